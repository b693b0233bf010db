"""Shared fixtures: real warehouses (SQLite file and the PostgreSQL server), a small universe."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa

from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.tables import metadata
from volaris_assets.warehouse.urls import normalize_url

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

PG_URL = os.environ.get("VOLARIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SMALL_UNIVERSE = "AAPL,MSFT,NVDA,BRK.B,KO,XOM"


def postgres_url() -> str:
    """The test server's URL; without a server the test fails under CI and skips elsewhere.

    Under pytest-xdist each worker gets a database of its own beside `test` (`test_gw0`, ...):
    `_fresh` drops every warehouse table, and two workers sharing one database would drop
    each other's tables in the middle of a test."""
    try:
        return _worker_database(PG_URL, os.environ.get("PYTEST_XDIST_WORKER"))
    except Exception as error:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL required under CI but not usable at {PG_URL}: {error}")
        pytest.skip(f"PostgreSQL not usable at {PG_URL}: {error}")


@functools.cache
def _worker_database(server_url: str, worker: str | None) -> str:
    """`server_url`, or under xdist its database suffixed with the worker's id, created on the
    first call (and kept, like `test` itself: `_fresh` empties it)."""
    served = sa.make_url(server_url)
    url = served.set(database=f"{served.database}_{worker}") if worker else served
    admin = sa.create_engine(
        normalize_url(server_url), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            exists = conn.exec_driver_sql(
                "SELECT 1 FROM pg_database WHERE datname = %(name)s", {"name": url.database}
            ).first()
            if not exists:
                conn.exec_driver_sql(f'CREATE DATABASE "{url.database}"')
    finally:
        admin.dispose()
    return url.render_as_string(hide_password=False)


def _fresh(url: str) -> str:
    warehouse = Warehouse(url)
    metadata.drop_all(warehouse.engine)
    warehouse.dispose()
    return url


@pytest.fixture
def pg_warehouse_url() -> str:
    return _fresh(postgres_url())


@pytest.fixture
def sqlite_warehouse_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path) -> str:
    """Each test using this runs once per dialect."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.db'}"
    return _fresh(postgres_url())


@pytest.fixture(autouse=True)
def own_provider_budget(monkeypatch, tmp_path) -> None:
    """Each test spends its own provider budget (a SQLite file of its own): reservations a
    cancelled test left queued would otherwise delay the next test's requests."""
    monkeypatch.setenv("VOLARIS_BUDGET_FILE", str(tmp_path / "provider_budget.db"))
    monkeypatch.delenv("REDIS_URL", raising=False)


@pytest.fixture
def small_universe(monkeypatch) -> list[str]:
    monkeypatch.setenv("VOLARIS_UNIVERSE", SMALL_UNIVERSE)
    return SMALL_UNIVERSE.split(",")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance
