"""The bulk write paths: COPY straight in or through staging (PostgreSQL), one executemany of
converted columns (SQLite), with the same results either way."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import sqlalchemy as sa

from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

T0 = datetime(2026, 11, 24, 20, 45, 0, 123456, tzinfo=UTC)


def snapshot(count: int, start: int = 0, **columns: object) -> pd.DataFrame:
    """Option snapshot rows shaped as a provider parse leaves them (float volumes with NaN)."""
    strikes = np.arange(start, start + count, dtype=float) + 100.0
    frame = pd.DataFrame(
        {
            "occ_symbol": [f"AAPL  261218P{int(k * 1000):08d}" for k in strikes],
            "snapshot_ts": T0,
            "symbol": "AAPL",
            "expiration": datetime(2026, 12, 18).date(),
            "strike": strikes,
            "right": "P",
            "bid": 1.25,
            "ask": 1.5,
            "volume": [np.nan if i % 3 == 0 else float(i) for i in range(count)],
            "delta": -0.1 / 3,
            "provider": "schwab",
        }
    )
    return frame.assign(**columns)


def stored(warehouse: Warehouse) -> pd.DataFrame:
    frame = warehouse.read_frame(
        sa.select(tables.option_snapshots).order_by(tables.option_snapshots.c.strike)
    )
    return frame.reset_index(drop=True)


def test_new_stored_and_mixed_batches_all_land(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    with warehouse.transaction() as conn:
        assert warehouse.upsert(conn, "option_snapshots", snapshot(50)) == 50
    # First rows new, the last ten already stored: a straight COPY would stop at row 41.
    with warehouse.transaction() as conn:
        assert warehouse.upsert(conn, "option_snapshots", snapshot(50, start=40, bid=2.0)) == 50
    rows = stored(warehouse)
    assert len(rows) == 90
    assert (rows["bid"] == [1.25] * 40 + [2.0] * 50).all()
    assert rows["delta"].tolist() == [-0.1 / 3] * 90  # floats round-trip exactly
    assert (pd.to_datetime(rows["snapshot_ts"], utc=True) == pd.Timestamp(T0)).all()
    warehouse.dispose()


def test_float_counts_become_integers_and_nan_null(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "option_snapshots", snapshot(6))
    volume = stored(warehouse)["volume"]
    assert volume.isna().tolist() == [True, False, False, True, False, False]
    assert [int(v) for v in volume.dropna()] == [1, 2, 4, 5]
    warehouse.dispose()


def test_duplicate_keys_in_one_batch_keep_the_last(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    batch = pd.concat([snapshot(5, bid=1.0), snapshot(5, bid=3.0)], ignore_index=True)
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "option_snapshots", batch)
    with warehouse.transaction() as conn:  # and again, now through the update path
        warehouse.upsert(conn, "option_snapshots", batch.assign(bid=batch["bid"] + 1))
    assert stored(warehouse)["bid"].tolist() == [4.0] * 5
    warehouse.dispose()


def test_stored_instants_compare_as_sqlalchemy_writes_them(warehouse_url):
    """`instant()` comparisons (the latest-chain clean-up) see what the bulk path stored."""
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    contracts = snapshot(3).drop(columns=["snapshot_ts"])
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "option_contracts", contracts.assign(last_updated=T0))
        warehouse.upsert(
            conn,
            "option_contracts",
            contracts.assign(last_updated=T0 - timedelta(microseconds=1), bid=9.0),
            update_where_newer="last_updated",
        )
    column = tables.option_contracts.c.last_updated
    with warehouse.engine.connect() as conn:
        same = conn.execute(
            sa.select(sa.func.count()).where(column == warehouse.instant(T0))
        ).scalar()
        older = conn.execute(
            sa.select(sa.func.count()).where(column < warehouse.instant(T0))
        ).scalar()
    assert (same, older) == (3, 0)
    assert warehouse.read_frame("SELECT bid FROM option_contracts")["bid"].tolist() == [1.25] * 3
    warehouse.dispose()


def test_a_batch_cut_off_by_the_server_is_written_again_whole():
    """The server terminates the session between two bulk writes of one transaction (as a
    fast shutdown or a failover does): the retry writes both batches once, on a new session,
    and the first batch's rows from the dead session are not left behind."""
    from volaris_assets_tests.conftest import postgres_url
    from volaris_assets_tests.reliability.databases import scratch_database

    with scratch_database(postgres_url(), "cut") as url:
        warehouse = Warehouse(url, reconnect_window_s=5)
        warehouse.create_tables()
        admin = sa.create_engine(warehouse.url, poolclass=sa.pool.NullPool)
        sessions: list[int] = []

        def two_batches(conn: sa.Connection) -> int:
            sessions.append(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
            warehouse.upsert(conn, "option_snapshots", snapshot(50))
            if len(sessions) == 1:
                with admin.connect() as other:
                    other.exec_driver_sql(f"SELECT pg_terminate_backend({sessions[0]})")
            return warehouse.upsert(conn, "option_snapshots", snapshot(50, start=50))

        assert warehouse.run_transaction(two_batches) == 50
        assert len(sessions) == 2 and sessions[0] != sessions[1]
        assert stored(warehouse)["strike"].tolist() == [100.0 + k for k in range(100)]
        admin.dispose()
        warehouse.dispose()
