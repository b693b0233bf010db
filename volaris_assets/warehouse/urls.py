"""DATABASE_URL handling: the URL SQLAlchemy opens, and the forms safe to show a user."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from volaris_assets import redaction

DEFAULT_SQLITE_PATH = Path("data") / "volaris.db"
_DIALECT_NAMES = {"postgresql": "PostgreSQL"}


def normalize_url(url: str | None) -> str:
    """Turn a user's DATABASE_URL into one SQLAlchemy can open with the installed drivers.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg v3, which the project does not install
    (dagster-postgres needs psycopg2), so the scheme is pinned to psycopg2 here. `postgres://`
    (Heroku style) is accepted too. No URL means the SQLite file under `data/`.
    """
    if not url:
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"
    scheme, separator, rest = url.partition("://")
    scheme = scheme.lower()  # "PostgreSQL://" names no SQLAlchemy dialect
    if scheme in ("postgresql", "postgres"):
        return "postgresql+psycopg2://" + rest
    return f"{scheme}{separator}{rest}"


def redact_url(url: str) -> str:
    """The URL with its password hidden, for logs and metadata: the password of its user
    part, and one passed as a query parameter (`?password=`, which libpq accepts too)."""
    shown = sa.make_url(normalize_url(url)).render_as_string(hide_password=True)
    return redaction.redact(shown)


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL (None for another dialect or an in-memory database).

    A URI-style URL (`sqlite:///file:/path/w.db?mode=ro&uri=true`, how a read-only file is
    opened) names the file after its `file:` prefix.
    """
    parsed = sa.make_url(normalize_url(url))
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return None
    if parsed.query.get("uri") == "true":
        database = database.removeprefix("file:")
    return Path(database)


def describe_database(url: str) -> str:
    """Which database a message is about: the SQLite file, or the server URL without its
    password (dialect, user, host, port and database name are what a user checks)."""
    path = sqlite_path(url)
    if path is not None:
        return f"the SQLite file {path.resolve()}"
    backend = sa.make_url(normalize_url(url)).get_backend_name()
    if backend == "sqlite":
        return "the in-memory SQLite database"
    return f"the {_DIALECT_NAMES.get(backend, backend)} database {redact_url(url)}"
