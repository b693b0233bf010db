"""`WarehouseResource.open()` on each dialect: on PostgreSQL every open of a process shares one
engine (the daemon opens the warehouse on every sensor tick and quotes refresh), on SQLite each
open reads the file afresh."""

from __future__ import annotations

import gc

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGDialect

from volaris_assets.resources.warehouse import SHARED_ENGINES, WarehouseResource
from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.tables import metadata


def _live_postgres_dialects() -> int:
    gc.collect()
    return sum(isinstance(candidate, PGDialect) for candidate in gc.get_objects())


def test_postgres_opens_share_one_engine_and_leave_no_dialect_behind(pg_warehouse_url):
    resource = WarehouseResource(database_url=pg_warehouse_url)
    with resource.open() as first:
        engine = first.engine
    before = _live_postgres_dialects()
    for _ in range(20):
        with resource.open() as warehouse:
            assert warehouse.engine is engine
            assert warehouse.read_frame("SELECT 1 AS one")["one"].tolist() == [1]
    # An engine per open left its dialect referenced by SQLAlchemy's lru_cache'd methods.
    assert _live_postgres_dialects() == before


def test_tables_dropped_between_two_opens_are_created_by_the_second(pg_warehouse_url):
    resource = WarehouseResource(database_url=pg_warehouse_url)
    with resource.open():
        pass
    other = Warehouse(pg_warehouse_url)  # every table dropped through an engine of its own
    metadata.drop_all(other.engine)
    other.dispose()
    with resource.open() as warehouse:
        assert warehouse.read_frame("SELECT count(*) AS n FROM tickers")["n"].tolist() == [0]


def test_past_the_limit_the_least_recently_used_postgres_engine_is_let_go(pg_warehouse_url):
    # Distinct URLs for one database: the application name is part of the URL.
    urls = [f"{pg_warehouse_url}?application_name=volaris_{n}" for n in range(SHARED_ENGINES + 1)]
    engines = []
    for url in urls:
        with WarehouseResource(database_url=url).open() as warehouse:
            engines.append(warehouse.engine)
    assert len({id(engine) for engine in engines}) == len(urls)
    with WarehouseResource(database_url=urls[-1]).open() as warehouse:
        assert warehouse.engine is engines[-1]
    with WarehouseResource(database_url=urls[0]).open() as warehouse:
        assert warehouse.engine is not engines[0]


def test_a_sqlite_file_replaced_between_two_opens_is_the_one_read(tmp_path):
    path = tmp_path / "warehouse.db"
    resource = WarehouseResource(database_url=f"sqlite:///{path}")
    with resource.open() as warehouse, warehouse.transaction() as conn:
        conn.execute(sa.text("CREATE TABLE scratch (x INTEGER)"))
    for leftover in tmp_path.glob("warehouse.db*"):
        leftover.unlink()
    with resource.open() as warehouse:
        assert not sa.inspect(warehouse.engine).has_table("scratch")
        assert sa.inspect(warehouse.engine).has_table("tickers")
