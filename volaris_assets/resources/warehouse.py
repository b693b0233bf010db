"""The warehouse as a Dagster resource: SQLite by default, PostgreSQL with DATABASE_URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from volaris_assets import redaction
from volaris_assets.warehouse.errors import WarehouseUnavailable, infrastructure_failures
from volaris_assets.warehouse.store import Warehouse, redact_url


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
        try:
            with infrastructure_failures(self.database_url or ""):
                warehouse = Warehouse(
                    self.database_url or "", reconnect_window_s=self.reconnect_window_s
                )
                redaction.register(warehouse.engine.url.password)
                try:
                    warehouse.create_tables()
                    yield warehouse
                finally:
                    warehouse.dispose()
        except WarehouseUnavailable as error:
            raise dg.Failure(description=str(error)) from None

    def describe(self) -> str:
        """The URL with the password hidden, safe for logs and metadata."""
        return redact_url(self.database_url or "")
