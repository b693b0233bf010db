"""The warehouse connection: URL handling, schema creation and idempotent writes.

SQLite is the embedded default; PostgreSQL is the production path. Both take the same calls; the
dialect-specific bulk paths live in `upsert.py`.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from volaris_assets.warehouse import upsert
from volaris_assets.warehouse.tables import KEYS, metadata

DEFAULT_SQLITE_PATH = Path("data") / "volaris.db"


def normalize_url(url: str | None) -> str:
    """Turn a user's DATABASE_URL into one SQLAlchemy can open with the installed drivers.

    SQLAlchemy 2.1 maps a bare `postgresql://` to psycopg v3, which the project does not install
    (dagster-postgres needs psycopg2), so the scheme is pinned to psycopg2 here. `postgres://`
    (Heroku style) is accepted too. No URL means the SQLite file under `data/`.
    """
    if not url:
        return f"sqlite:///{DEFAULT_SQLITE_PATH}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    return url


def redact_url(url: str) -> str:
    """The URL with its password hidden, for logs and metadata."""
    return sa.make_url(normalize_url(url)).render_as_string(hide_password=True)


def create_engine(url: str | None) -> Engine:
    normalized = normalize_url(url)
    parsed = sa.make_url(normalized)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(normalized, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(normalized, pool_pre_ping=True, pool_size=2, max_overflow=2)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the bot read while a run writes; busy_timeout waits instead of failing."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


class Warehouse:
    """The warehouse behind one engine. Create one per run; `dispose()` at the end."""

    def __init__(self, url: str | None = None) -> None:
        self.url = normalize_url(url if url is not None else os.environ.get("DATABASE_URL"))
        self.engine = create_engine(self.url)
        self.dialect = self.engine.dialect.name

    def create_tables(self) -> None:
        """Create missing tables; safe to call on every run and from concurrent runs."""
        with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                # Two runs creating the schema at once would race on the catalog.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
            metadata.create_all(conn, checkfirst=True)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def upsert(
        self,
        conn: Connection,
        table: str,
        rows: pd.DataFrame | Sequence[Mapping[str, Any]],
        *,
        update_where_newer: str | None = None,
    ) -> int:
        """Insert or update `rows` on the table's natural key; returns the number of rows sent.

        `update_where_newer` names a timestamp column: an existing row is only overwritten by a
        row at least as new, so an old backfill can never clobber a fresher value.
        """
        target = metadata.tables[table]
        if self.dialect == "postgresql":
            frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
            if frame.empty:
                return 0
            return upsert.postgres_upsert(conn, target, KEYS[table], frame, update_where_newer)
        return upsert.sqlite_upsert(conn, target, KEYS[table], rows, update_where_newer)

    def instant(self, value: datetime) -> datetime:
        """A UTC instant in the form this dialect stores it (naive UTC on SQLite)."""
        return _db_value_sqlite(value) if self.dialect == "sqlite" else value

    def read_frame(self, query: sa.Executable | str, **params: Any) -> pd.DataFrame:
        statement = sa.text(query) if isinstance(query, str) else query
        with self.engine.connect() as conn:
            result = conn.execute(statement, params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def dispose(self) -> None:
        self.engine.dispose()


def _db_value(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return value.item()  # numpy scalars -> Python
    return value


def _db_value_sqlite(value: Any) -> Any:
    value = _db_value(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_date(value: Any) -> date:
    """A DATE column's value as a `date` (SQLite hands back strings through raw SQL)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
