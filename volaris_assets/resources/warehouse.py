"""The warehouse as a Dagster resource: SQLite by default, PostgreSQL with DATABASE_URL."""

from __future__ import annotations

import contextlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from volaris_assets import redaction
from volaris_assets.warehouse.errors import WarehouseUnavailable, infrastructure_failures
from volaris_assets.warehouse.store import Warehouse, redact_url
from volaris_assets.warehouse.urls import normalize_url

# PostgreSQL warehouses a process keeps open at once (one per URL in practice; more in tests).
SHARED_ENGINES = 4
_shared: OrderedDict[tuple[int, str, float], Warehouse] = OrderedDict()
_shared_lock = threading.Lock()


class WarehouseResource(dg.ConfigurableResource):
    """Opens the warehouse for a step and makes sure the contract's tables exist."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy/libpq URL; unset means the SQLite file data/volaris.db.",
    )
    reconnect_window_s: float = Field(
        default=30.0,
        ge=0.0,
        description="How long a write keeps reconnecting through a lost connection (a restart, "
        "a failover, a suspended serverless database) before the run fails.",
    )

    @contextlib.contextmanager
    def open(self) -> Iterator[Warehouse]:
        """The step's warehouse, tables created.

        A warehouse that cannot be opened, reached or written, now or anywhere inside the
        block, fails the step with a `dg.Failure` whose description is the one paragraph from
        `warehouse.errors` (what failed, which database, the fix): that is the run's failure
        message in the UI and what `make materialize` prints, instead of driver tracebacks.
        """
        url = self._url()
        try:
            with infrastructure_failures(url):
                with _warehouse(url, self.reconnect_window_s) as warehouse:
                    redaction.register(warehouse.engine.url.password)
                    warehouse.create_tables()
                    yield warehouse
        except WarehouseUnavailable as error:
            raise dg.Failure(description=str(error)) from None

    def describe(self) -> str:
        """The URL with the password hidden, safe for logs and metadata."""
        return redact_url(self._url())

    def _url(self) -> str:
        """The URL as the settings check read it: `EnvVar` binds the variable's raw value, and
        a trailing newline (a secret mounted from a file) became part of the database name."""
        return (self.database_url or "").strip()


@contextlib.contextmanager
def _warehouse(url: str, reconnect_window_s: float) -> Iterator[Warehouse]:
    """The warehouse for one `open()`: this process's shared one on PostgreSQL, a fresh one
    (disposed after) on SQLite, decided as the provider budget decides its store
    (`budget/config.py`).

    The daemon opens the warehouse on every sensor tick (price alerts every 15 s) and on every
    quotes refresh of its light lane. A fresh engine each time cost a new server connection
    each time and, on PostgreSQL, ~30 KB that stayed: SQLAlchemy 2.1's PostgreSQL dialect
    memoizes its reflection queries with `functools.lru_cache` on methods, which holds every
    engine's dialect until 128 newer ones push it out (measured with the price-alert sensor on
    PostgreSQL: +15 MB over 280 ticks, ~70 minutes of the daemon, then flat; +7 MB with one
    engine). SQLite keeps an engine per open: a pooled connection would hold on to a database
    file deleted or replaced since, and its dialect keeps nothing.
    """
    if sa.make_url(normalize_url(url)).get_backend_name() != "postgresql":
        warehouse = Warehouse(url, reconnect_window_s=reconnect_window_s)
        try:
            yield warehouse
        finally:
            warehouse.dispose()
        return
    yield _shared_postgres(url, reconnect_window_s)


def _shared_postgres(url: str, reconnect_window_s: float) -> Warehouse:
    """This process's warehouse at `url`, made on first use. The key holds the process id: a
    forked child makes its own instead of using its parent's sockets. Past SHARED_ENGINES
    URLs the least recently used is disposed (its idle connections closed)."""
    key = (os.getpid(), url, reconnect_window_s)
    with _shared_lock:
        warehouse = _shared.get(key)
        if warehouse is None:
            warehouse = _shared[key] = Warehouse(url, reconnect_window_s=reconnect_window_s)
            if len(_shared) > SHARED_ENGINES:
                _shared.popitem(last=False)[1].dispose()
        _shared.move_to_end(key)
        return warehouse
