"""Scratch PostgreSQL databases on the test server, one per test, dropped afterwards.

Whole runs in subprocesses, a daemon and the UI all write to the warehouse (and Dagster's own
storage) at once; a database of their own keeps them apart from every other test using the
shared `test` database, and lets two warehouses be compared row for row.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import sqlalchemy as sa

from volaris_assets.warehouse.store import normalize_url


def _admin_engine(server_url: str) -> sa.Engine:
    url = sa.make_url(normalize_url(server_url)).set(database="postgres")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)


@contextlib.contextmanager
def scratch_database(server_url: str, label: str = "rel") -> Iterator[str]:
    """A new empty database on the server of `server_url`; yields its URL, drops it on exit."""
    name = f"volaris_{label}_{uuid.uuid4().hex[:10]}"
    engine = _admin_engine(server_url)
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        engine.dispose()
