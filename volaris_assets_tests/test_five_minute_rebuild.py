"""The 5-minute bars rebuilt from stored 1-minute bars after each intraday fetch."""

from __future__ import annotations

from datetime import date

import pandas as pd

from volaris_assets.prices.assets import _rebuild_five_minute
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.warehouse.store import Warehouse

EARLIER, LATER = date(2026, 11, 23), date(2026, 11, 24)


def _minutes(day: date, provider: str) -> pd.DataFrame:
    return SimulatedMarket().minute_bars("AAPL", day).assign(provider=provider)


def _store(warehouse: Warehouse, minutes: pd.DataFrame) -> pd.DataFrame:
    warehouse.run_transaction(lambda conn: warehouse.upsert(conn, "price_bars", minutes))
    return minutes


def _rebuild(warehouse: Warehouse, fetched: pd.DataFrame) -> int:
    return warehouse.run_transaction(
        lambda conn: _rebuild_five_minute(conn, warehouse, "AAPL", fetched["ts"])
    )


def _five_minute_bars(warehouse: Warehouse) -> pd.DataFrame:
    bars = warehouse.read_frame(
        "SELECT ts, open, close, volume, provider FROM price_bars "
        "WHERE symbol = 'AAPL' AND timeframe = '5m' ORDER BY ts"
    )
    return bars.assign(ts=pd.to_datetime(bars["ts"], utc=True))


def test_a_backfilled_session_rebuilds_its_own_buckets_with_its_own_provider(warehouse_url):
    """Backfilling an earlier session (Polygon) while a later one is stored (simulated): only
    the earlier session's 78 buckets are written, each labelled Polygon."""
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    _store(warehouse, _minutes(LATER, "simulated"))
    backfilled = _store(warehouse, _minutes(EARLIER, "polygon"))
    assert _rebuild(warehouse, backfilled) == 78
    five = _five_minute_bars(warehouse)
    assert len(five) == 78 and set(five["provider"]) == {"polygon"}
    assert five["ts"].dt.date.eq(EARLIER).all()
    warehouse.dispose()


def test_a_fetch_that_starts_mid_bucket_rebuilds_that_bucket_from_every_stored_minute(
    warehouse_url,
):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    session = _minutes(LATER, "polygon")
    stored = _store(warehouse, session.iloc[:3])
    fetched = _store(warehouse, session.iloc[3:8].assign(provider="alpaca"))
    assert _rebuild(warehouse, fetched) == 2  # minutes 0-4 and 5-7 of the session
    five = _five_minute_bars(warehouse)
    first = pd.concat([stored, fetched]).iloc[:5]
    assert five["provider"].tolist() == ["alpaca", "alpaca"]  # each bucket's last minute's
    assert five["open"].iloc[0] == first["open"].iloc[0]
    assert five["close"].iloc[0] == first["close"].iloc[-1]
    assert five["volume"].iloc[0] == first["volume"].sum()
    warehouse.dispose()
