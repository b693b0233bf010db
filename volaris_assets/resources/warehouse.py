"""The warehouse as a Dagster resource: SQLite by default, PostgreSQL with DATABASE_URL."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import dagster as dg
from pydantic import Field

from volaris_assets import redaction
from volaris_assets.warehouse.store import Warehouse, redact_url


class WarehouseResource(dg.ConfigurableResource):
    """Opens the warehouse for a step and makes sure the contract's tables exist."""

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy/libpq URL; unset means the SQLite file data/volaris.db.",
    )

    @contextlib.contextmanager
    def open(self) -> Iterator[Warehouse]:
        warehouse = Warehouse(self.database_url or "")
        redaction.register(warehouse.engine.url.password)
        try:
            warehouse.create_tables()
            yield warehouse
        finally:
            warehouse.dispose()

    def describe(self) -> str:
        """The URL with the password hidden, safe for logs and metadata."""
        return redact_url(self.database_url or "")
