"""The warehouse connection: schema creation, idempotent writes, and units of work that ride
through a lost connection.

SQLite is the embedded default; PostgreSQL is the production path. Both take the same calls; the
dialect-specific bulk paths live in `upsert.py`, URL handling in `urls.py`, and what a failure
means (and whether reconnecting can cure it) in `errors.py`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from volaris_assets.warehouse import schema, upsert
from volaris_assets.warehouse.errors import (
    WarehouseUnavailable,
    explain,
    infrastructure_failures,
    is_connection_lost,
)
from volaris_assets.warehouse.tables import KEYS, metadata
from volaris_assets.warehouse.urls import DEFAULT_SQLITE_PATH as DEFAULT_SQLITE_PATH
from volaris_assets.warehouse.urls import normalize_url, sqlite_path
from volaris_assets.warehouse.urls import redact_url as redact_url
from volaris_assets.warehouse.wal import use_wal

_log = logging.getLogger(__name__)
T = TypeVar("T")

# How long a SQLite connection waits for another process's lock (a run writing while the bot
# reads) before it fails.
_SQLITE_TIMEOUT_S = 60
# Connections a server or a proxy may close while idle are replaced before they are found dead:
# below AWS NLB's 350 s idle timeout, and a ping to a silently dropped connection could wait for
# TCP's own timeout. A connect that gets no answer gives up in time for another try inside the
# reconnect window; keepalives notice a server gone mid-statement.
_PG_POOL = {"pool_pre_ping": True, "pool_recycle": 300, "pool_size": 2, "max_overflow": 2}
_PG_CONNECT_ARGS = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30}
# Pauses between reconnect attempts: short first (a restart takes about a second), then capped.
_FIRST_PAUSE_S = 0.1
_MAX_PAUSE_S = 2.0


def create_engine(url: str | None) -> Engine:
    """SQLite with WAL and a busy timeout (its directory created), or PostgreSQL with a small
    pool whose connections are checked before use and replaced before idle timeouts."""
    normalized = normalize_url(url)
    parsed = sa.make_url(normalized)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_path(normalized)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(normalized, connect_args={"timeout": _SQLITE_TIMEOUT_S})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # Settings in the URL's query win over these defaults.
    connect_args = {k: v for k, v in _PG_CONNECT_ARGS.items() if k not in parsed.query}
    return sa.create_engine(normalized, connect_args=connect_args, **_PG_POOL)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the bot read while a run writes. The connection's `timeout` (create_engine)
    is its busy timeout: a lock is waited for, not failed on."""
    use_wal(dbapi_connection, _SQLITE_TIMEOUT_S)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Warehouse:
    """The warehouse behind one engine. Create one per run; `dispose()` at the end.

    `reconnect_window_s` is how long `run_transaction` keeps retrying a unit of work through a
    lost connection (a restart, a failover, a suspended serverless compute) before the
    warehouse counts as down.
    """

    def __init__(self, url: str | None = None, reconnect_window_s: float = 30.0) -> None:
        self.url = normalize_url(url if url is not None else os.environ.get("DATABASE_URL"))
        self.reconnect_window_s = reconnect_window_s
        self.engine = create_engine(self.url)
        self.dialect = self.engine.dialect.name

    def create_tables(self) -> None:
        """Create missing tables and widen text columns an older release made narrower; safe
        to call on every run and from concurrent runs. A warehouse that cannot be reached or
        written raises `WarehouseUnavailable` with what to fix."""
        with infrastructure_failures(self.url):
            self.run_transaction(self._create_tables)

    def _create_tables(self, conn: Connection) -> None:
        if self.dialect == "postgresql":
            # Two runs creating the schema at once would race on the catalog.
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
        metadata.create_all(conn, checkfirst=True)
        if self.dialect == "postgresql":  # SQLite does not enforce VARCHAR lengths
            if widened := schema.widen_text_columns(conn, metadata):
                _log.info("warehouse columns widened: %s", ", ".join(widened))

    def run_transaction(self, work: Callable[[Connection], T]) -> T:
        """Run `work` in one transaction and return its result, reconnecting through a lost
        connection for up to `reconnect_window_s`.

        Each attempt is the whole of `work` on a fresh connection: a transaction the connection
        loss cut short was rolled back by the server, so nothing is ever half written. `work`
        must be safe to run again (every warehouse write is an idempotent upsert): a connection
        lost during COMMIT leaves unknown whether it committed. A row the database refused, or
        a failure a reconnect cannot cure, is raised at once. Past the window the warehouse is
        down: `WarehouseUnavailable`, whose message says what to check.
        """
        deadline: float | None = None
        pause = _FIRST_PAUSE_S
        while True:
            try:
                with self.engine.begin() as conn:
                    return work(conn)
            except Exception as error:
                if not is_connection_lost(error):
                    raise
                now = time.monotonic()
                deadline = now + self.reconnect_window_s if deadline is None else deadline
                if now >= deadline:
                    raise WarehouseUnavailable(
                        f"{explain(error, self.url)} Still failing after "
                        f"{self.reconnect_window_s:g} s of reconnecting."
                    ) from None
                _log.warning("reconnecting to the warehouse: %s", explain(error, self.url))
                time.sleep(min(pause, deadline - now))
                pause = min(pause * 2, _MAX_PAUSE_S)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction, no reconnecting: for work that must not run twice."""
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
        if self.dialect != "postgresql":
            return upsert.sqlite_upsert(conn, target, KEYS[table], rows, update_where_newer)
        if isinstance(rows, pd.DataFrame) and len(rows) > upsert.SMALL_BATCH_ROWS:
            return upsert.postgres_upsert(conn, target, KEYS[table], rows, update_where_newer)
        records = rows.to_dict("records") if isinstance(rows, pd.DataFrame) else list(rows)
        if not records:
            return 0
        if len(records) <= upsert.SMALL_BATCH_ROWS:
            return upsert.postgres_insert_rows(
                conn, target, KEYS[table], records, update_where_newer
            )
        frame = pd.DataFrame(records)
        return upsert.postgres_upsert(conn, target, KEYS[table], frame, update_where_newer)

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
