"""What a chain write leaves in `option_snapshots` and `option_contracts`, on both dialects."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pandas as pd
import pytest

from volaris_assets.options.assets import write_chain
from volaris_assets.providers.resilience import Fetched
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.test_validation import AS_OF

EARLIER = AS_OF - timedelta(minutes=15)


@pytest.fixture
def warehouse(warehouse_url) -> Iterator[Warehouse]:
    store = Warehouse(warehouse_url)
    store.create_tables()
    yield store
    store.dispose()


def _write(warehouse: Warehouse, frame: pd.DataFrame, provider: str, snapshot) -> None:
    fetched = Fetched(frame=frame, provider=provider, attempts=1)
    warehouse.run_transaction(lambda conn: write_chain(conn, warehouse, "AAPL", fetched, snapshot))


def _stored(warehouse: Warehouse, table: str) -> pd.DataFrame:
    return warehouse.read_frame(f"SELECT * FROM {table} WHERE symbol = 'AAPL'")


def _chains() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A whole chain, and another provider's that lists a third of its contracts."""
    chain = SimulatedMarket().option_chain("AAPL", AS_OF)
    return chain, chain.iloc[::3].reset_index(drop=True)


def test_a_snapshot_written_again_by_another_provider_is_replaced_whole(warehouse):
    """The first offline run writes the simulated market's chain; the same window run again
    with Schwab configured must leave Schwab's chain alone as that snapshot, not beside it."""
    simulated, schwab = _chains()
    _write(warehouse, simulated, "simulated", AS_OF)
    _write(warehouse, schwab, "schwab", AS_OF)
    for table in ("option_snapshots", "option_contracts"):
        stored = _stored(warehouse, table)
        assert set(stored["provider"]) == {"schwab"}, table
        assert sorted(stored["occ_symbol"]) == sorted(schwab["occ_symbol"]), table


def test_replaying_an_older_snapshot_leaves_the_fresher_latest_chain_as_it_is(warehouse):
    whole, fresher = _chains()
    _write(warehouse, fresher, "schwab", AS_OF)
    _write(warehouse, whole, "schwab", EARLIER)  # a backfill of the window before
    latest = _stored(warehouse, "option_contracts")
    assert sorted(latest["occ_symbol"]) == sorted(fresher["occ_symbol"])  # nothing added
    assert pd.to_datetime(latest["last_updated"], utc=True).eq(pd.Timestamp(AS_OF)).all()
    history = _stored(warehouse, "option_snapshots")
    assert history.groupby(pd.to_datetime(history["snapshot_ts"], utc=True)).size().to_dict() == {
        pd.Timestamp(EARLIER): len(whole),
        pd.Timestamp(AS_OF): len(fresher),
    }


def test_a_newer_snapshot_drops_the_contracts_it_no_longer_lists(warehouse):
    whole, fewer = _chains()
    _write(warehouse, whole, "schwab", EARLIER)
    _write(warehouse, fewer, "schwab", AS_OF)
    assert sorted(_stored(warehouse, "option_contracts")["occ_symbol"]) == sorted(
        fewer["occ_symbol"]
    )
    assert len(_stored(warehouse, "option_snapshots")) == len(whole) + len(fewer)
