"""Validators for the settings model: each takes the raw text of one variable and returns the
value the platform uses, or raises `ValueError` with the reason in words a user acts on.

They are plain functions so the model stays a list of declarations, and so that a rule (a URL,
a provider list) is written once for every variable it applies to.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa

from volaris_assets.providers import registry

# The dialects the warehouse has drivers for (normalize_url pins postgresql to psycopg2).
DATABASE_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg2", "sqlite")
ALPACA_FEEDS = ("iex", "sip", "delayed_sip", "boats", "overnight", "otc")
_DATASET = re.compile(r"^[A-Z0-9]+\.[A-Z0-9]+$")
# A token issued "in the future" is a typo (a wrong year), unless it is a clock skew of minutes.
_CLOCK_SKEW = timedelta(hours=1)


def database_url(text: str) -> str:
    """A URL SQLAlchemy can open with the installed drivers: a wrong scheme or a bare
    `user:pw@host/db` would otherwise surface as `NoSuchModuleError` or a parse error deep in
    the first run."""
    scheme, separator, _ = text.partition("://")
    if not separator:
        raise ValueError("not a URL (no scheme://)")
    if scheme.lower() not in DATABASE_SCHEMES:
        raise ValueError(f"unknown database scheme {scheme!r}")
    if text.count("@") > 1:
        raise ValueError("holds more than one '@' (write an '@' in the password as %40)")
    try:
        url = sa.make_url(text)
        port = url.port  # parsed on first use, and a bad port raises then
    except (sa.exc.ArgumentError, ValueError):
        raise ValueError("not a parseable database URL") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port {port} is not a TCP port (1-65535)")
    if url.get_backend_name() == "sqlite" and (
        url.database == ":memory:" or url.query.get("mode") == "memory"
    ):
        raise ValueError(
            "an in-memory SQLite database lives as long as one connection, so each step would "
            "write a warehouse of its own and lose it: give a file path (sqlite:///data/w.db)"
        )
    if url.get_backend_name() == "postgresql" and not (url.host and url.database):
        raise ValueError("a PostgreSQL URL needs a host and a database name")
    if url.get_backend_name() == "sqlite" and not url.database:
        raise ValueError("a SQLite URL needs a file path (sqlite:///path/to/file.db)")
    if url.get_backend_name() == "sqlite" and url.host:
        raise ValueError(
            "a SQLite URL has no host: three slashes before a relative path "
            "(sqlite:///data/w.db), four before an absolute one (sqlite:////srv/w.db)"
        )
    return text


def provider_list(text: str, capability: str) -> str:
    """Known providers that serve `capability`, in order, comma-joined. A name given twice is
    an error, as in `VOLARIS_RATE_LIMITS`: a chain tries each provider once per symbol, so the
    second is a typo for some other provider more often than a wish."""
    names = [p.strip().lower() for p in text.split(",") if p.strip()]
    if not names:
        raise ValueError("names no provider")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} named twice (a provider is tried once a symbol)")
    unknown = [n for n in names if n not in registry.KNOWN_PROVIDERS]
    if unknown:
        known = ", ".join(registry.KNOWN_PROVIDERS)
        raise ValueError(f"unknown provider {', '.join(unknown)} (known: {known})")
    unable = [n for n in names if not _serves(n, capability)]
    if unable:
        raise ValueError(f"{', '.join(unable)} does not provide {capability} data")
    return ",".join(names)


def _serves(name: str, capability: str) -> bool:
    if name == registry.SIMULATED:
        return capability != "profile"
    return capability in registry.load_module(name).CAPABILITIES


def rate_limits(text: str) -> str:
    from volaris_assets.providers.rate_limit import parse_rate_limits

    try:
        limits = parse_rate_limits(text)
    except ValueError as error:  # its own "expected ..." would repeat the report's
        raise ValueError(str(error).split(": expected")[0]) from None
    unknown = sorted(set(limits) - set(registry.KNOWN_PROVIDERS))
    if unknown:
        raise ValueError(f"unknown provider {', '.join(unknown)}")
    return text


def response_caps(text: str) -> str:
    from volaris_assets.providers.http import parse_response_caps

    try:
        parse_response_caps(text)
    except ValueError as error:
        raise ValueError(str(error).split(": expected")[0]) from None
    return text


def http_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL with a host")
    return text.rstrip("/")


def redis_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix") or not (parts.hostname or parts.path):
        raise ValueError("not a redis:// URL")
    try:
        parts.port  # noqa: B018 - parsed on first use
    except ValueError:
        raise ValueError("its port is not a number") from None
    database = parts.path.strip("/")
    if parts.scheme != "unix" and database and not database.isdigit():
        raise ValueError("its database (the path) is not a number")
    return text


def lowered(text: str) -> str:
    return text.strip().lower()


def webhook_url(text: str) -> str:
    http_url(text)
    segments = [s for s in urlsplit(text).path.split("/") if s]
    if segments[:2] != ["api", "webhooks"] or len(segments) < 4:
        raise ValueError("not a webhook URL (no /api/webhooks/ID/TOKEN path)")
    return text


def issued_at(text: str) -> datetime:
    """An ISO-8601 time (naive means UTC), not in the future."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("not an ISO-8601 time") from None
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if value > datetime.now(UTC) + _CLOCK_SKEW:
        raise ValueError("is in the future")
    return value


def universe(text: str) -> str:
    """A CSV file or a list that yields at least one valid symbol; without this check an
    all-garbage list empties the universe and runs report "materialize the universe first"."""
    from volaris_assets.universe.constituents import parse_override

    try:
        load = parse_override(text)
    except FileNotFoundError:
        raise ValueError("the CSV file does not exist") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"the CSV file cannot be read ({type(error).__name__})") from None
    if not load.members:
        reasons = ", ".join(f"{count} {reason}" for reason, count in load.rejected.items())
        raise ValueError(f"yields no valid symbol ({reasons or 'empty'})")
    return text


def alpaca_feed(text: str) -> str:
    if text.lower() not in ALPACA_FEEDS:
        raise ValueError("not an Alpaca feed")
    return text.lower()


def databento_dataset(text: str) -> str:
    if not _DATASET.match(text):
        raise ValueError("not a Databento dataset code")
    return text


def device_token(text: str) -> str:
    """A UUID: Robinhood approves a device by this exact string (`providers.robinhood`)."""
    from volaris_assets.providers import robinhood

    return robinhood.device_token(text)


def mfa_secret(text: str) -> str:
    """An authenticator app's base32 secret, checked by decoding it as the client will."""
    from volaris_assets.providers import robinhood

    robinhood.mfa_key(text)
    return text


def existing_directory(text: str) -> str:
    """Dagster wants DAGSTER_HOME absolute and present; say so before Dagster does."""
    path = Path(text)
    if not path.is_absolute():
        raise ValueError("not an absolute path")
    if not path.is_dir():
        raise ValueError("is not an existing directory")
    return text


def file_path(text: str) -> str:
    path = Path(text)
    try:
        if path.is_dir():
            raise ValueError("is a directory, not a file")
        if not path.parent.is_dir():
            raise ValueError(f"its directory {path.parent} does not exist")
    except OSError as error:  # a name longer than the file system allows, say
        reason = error.strerror or type(error).__name__
        raise ValueError(f"cannot be a file here ({reason})") from None
    return text
