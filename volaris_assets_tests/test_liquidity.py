"""The scan's priority order from the warehouse's own daily bars (20-session median dollar
volume), with the shipped order for symbols without bars; and the scan runs in that order."""

from datetime import date, datetime, time

import dagster as dg
import pandas as pd

from volaris_assets import calendar
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.liquidity import LIQUIDITY_SESSIONS, by_liquidity, median_dollar_volume
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import SESSION, resources

DAY = date(2026, 11, 24)
SHIPPED = ["AAPL", "MSFT", "NVDA", "KO", "XOM", "BRK.B"]


def write_bars(warehouse: Warehouse, dollars: dict[str, list[float]], days: list[date]) -> None:
    """Daily bars at close 10 whose volume makes each session's dollar volume as given."""
    rows = [
        {
            "symbol": symbol,
            "timeframe": "1d",
            "ts": datetime.combine(day, time(0), calendar.UTC),
            "open": 10.0,
            "high": 10.0,
            "low": 10.0,
            "close": 10.0,
            "volume": int(amount / 10),
            "provider": "test",
        }
        for symbol, amounts in dollars.items()
        for day, amount in zip(days, amounts, strict=True)
    ]
    with warehouse.engine.begin() as conn:
        warehouse.upsert(conn, "price_bars", pd.DataFrame(rows))


def test_order_is_the_median_dollar_volume_of_the_last_20_sessions(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    assert by_liquidity(warehouse, SHIPPED, DAY) == SHIPPED  # no bars: the shipped order

    window = [s.day for s in calendar.sessions_between(date(2026, 9, 1), DAY)]
    recent, older = window[-LIQUIDITY_SESSIONS:], window[-LIQUIDITY_SESSIONS - 5 :][:5]
    write_bars(
        warehouse,
        {
            "KO": [5e6] * LIQUIDITY_SESSIONS,
            # One huge day lifts the mean above KO's, not the median.
            "XOM": [1e6] * (LIQUIDITY_SESSIONS - 1) + [1e9],
            "MSFT": [2e6] * LIQUIDITY_SESSIONS,
        },
        recent,
    )
    # Before the window: would make AAPL the most liquid if it counted.
    write_bars(warehouse, {"AAPL": [1e12] * 5}, older)
    # After the scanned session: not known yet on DAY.
    write_bars(warehouse, {"NVDA": [1e12]}, [date(2026, 11, 25)])

    medians = median_dollar_volume(warehouse, SHIPPED, DAY)
    assert medians.to_dict() == {"KO": 5e6, "MSFT": 2e6, "XOM": 1e6}
    assert by_liquidity(warehouse, SHIPPED, DAY) == ["KO", "MSFT", "XOM", "AAPL", "NVDA", "BRK.B"]


def test_the_scan_visits_the_most_liquid_first(sqlite_warehouse_url, small_universe, instance):
    res = resources(sqlite_warehouse_url, concurrency=1)  # one symbol at a time: a visible order
    assert dg.materialize(
        [sp500_constituents, scan_universe], resources=res, instance=instance
    ).success
    window = [s.day for s in calendar.sessions_between(date(2026, 10, 1), DAY)]
    write_bars(
        Warehouse(sqlite_warehouse_url),
        {"XOM": [9e9] * LIQUIDITY_SESSIONS, "KO": [8e9] * LIQUIDITY_SESSIONS},
        window[-LIQUIDITY_SESSIONS:],
    )
    result = dg.materialize(
        [wheel_premiums],
        partition_key=SESSION,
        resources=res,
        instance=instance,
    )
    assert result.success
    order = Warehouse(sqlite_warehouse_url).read_frame(
        "SELECT symbol FROM sync_stock_results ORDER BY recorded_at"
    )["symbol"]
    assert list(order[:2]) == ["XOM", "KO"]
