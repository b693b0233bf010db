"""The wheel scan asks a provider only for the puts it can use, and gets the same answer."""

import asyncio
from datetime import date

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.ingest.validation import validate_chain
from volaris_assets.providers.resilience import ResilienceRegistry
from volaris_assets.providers.simulated import SimulatedProvider
from volaris_assets.scan.assets import fetch_wheel_chain, wheel_premiums
from volaris_assets.scan.premiums import WheelSettings, wheel_candidates
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources

SESSION = calendar.session(date(2026, 11, 24))
SYMBOLS = ["AAPL", "BRK.B", "KO", "TSLA"]


def _scan(settings: WheelSettings) -> tuple[list, list, list[int], list[int]]:
    """Per symbol: the candidates through fetch_wheel_chain, those from the whole chain, the
    requests fetch_wheel_chain spent and the contracts it received."""
    provider = SimulatedProvider()
    chain = ResilienceRegistry().chain([provider])

    async def fetch_all():
        return [await fetch_wheel_chain(chain, s, SESSION, settings) for s in SYMBOLS]

    fetched = asyncio.run(fetch_all())
    windowed = [
        wheel_candidates(validate_chain(f.frame, SESSION.close).frame, settings) for f in fetched
    ]
    whole = [
        wheel_candidates(
            validate_chain(provider.market.option_chain(s, SESSION.close), SESSION.close).frame,
            settings,
        )
        for s in SYMBOLS
    ]
    return windowed, whole, [f.attempts for f in fetched], [len(f.frame) for f in fetched]


@pytest.mark.parametrize("target_dte", [7, 30, 60])
def test_the_window_holds_what_the_whole_chain_would_have_given(target_dte: int):
    settings = WheelSettings(target_dte=target_dte)
    windowed, whole, attempts, sizes = _scan(settings)
    for got, expected in zip(windowed, whole, strict=True):
        assert not expected.empty
        pd.testing.assert_frame_equal(got, expected)
    assert attempts == [1] * len(SYMBOLS)
    chain_size = len(SimulatedProvider().market.option_chain("AAPL", SESSION.close))
    assert max(sizes) < chain_size / 4  # puts of a few expirations, not the chain


def test_a_target_past_every_listed_expiration_falls_back_to_the_whole_chain():
    settings = WheelSettings(target_dte=400)  # listed expirations end ~200 days out
    windowed, whole, attempts, _ = _scan(settings)
    for got, expected in zip(windowed, whole, strict=True):
        assert not expected.empty  # the furthest monthly is still the nearest to the target
        pd.testing.assert_frame_equal(got, expected)
    assert attempts == [2] * len(SYMBOLS)  # the empty window, then the whole chain


def test_a_scan_of_an_earlier_session_leaves_the_latest_scan_in_place(
    warehouse_url, small_universe, instance
):
    """`stock_premiums` holds the latest scan: re-running an earlier session (a backfill)
    must not put its rows in place of the newer ones the bot reads."""
    res = resources(warehouse_url)
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    for day in ("2026-11-24", "2026-11-23", "2026-11-20"):
        scan = dg.materialize([wheel_premiums], partition_key=day, resources=res, instance=instance)
        assert scan.success
    warehouse = Warehouse(warehouse_url)
    stored = warehouse.read_frame("SELECT symbol, scan_date FROM stock_premiums")
    warehouse.dispose()
    assert set(stored["symbol"]) == set(small_universe)
    assert {str(d)[:10] for d in stored["scan_date"]} == {"2026-11-24"}


def test_a_latest_scan_with_no_candidate_is_not_undone_by_an_earlier_one(
    warehouse_url, small_universe, instance
):
    """A later session's scan that finds no put in its band for any symbol leaves no premium
    row; the session it scanned is still marked, so a backfill of an earlier session does not
    put that session's older candidates back where the bot reads the latest scan."""
    res = resources(warehouse_url)
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    empty_band = {"ops": {"wheel_premiums": {"config": {"delta_min": -0.0001, "delta_max": 0.0}}}}
    for day, config in (("2026-11-24", empty_band), ("2026-11-23", None)):
        scan = dg.materialize(
            [wheel_premiums], partition_key=day, resources=res, instance=instance, run_config=config
        )
        assert scan.success
    warehouse = Warehouse(warehouse_url)
    premiums = warehouse.read_frame("SELECT symbol FROM stock_premiums")
    marks = warehouse.read_frame("SELECT symbol, scan_date, candidates FROM stock_premium_scans")
    warehouse.dispose()
    assert premiums.empty
    assert set(marks["symbol"]) == set(small_universe)
    assert {str(d)[:10] for d in marks["scan_date"]} == {"2026-11-24"}
    assert set(marks["candidates"]) == {0}


def test_premium_rows_from_before_the_marks_still_hold_back_an_earlier_scan(
    warehouse_url, small_universe, instance
):
    """A warehouse whose latest scan a release without `stock_premium_scans` wrote: the run
    marks those rows first, so a backfill of an earlier session leaves them in place."""
    res = resources(warehouse_url)
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    assert dg.materialize(
        [wheel_premiums], partition_key="2026-11-24", resources=res, instance=instance
    )
    warehouse = Warehouse(warehouse_url)
    warehouse.run_transaction(lambda conn: conn.execute(sa.delete(tables.stock_premium_scans)))
    assert dg.materialize(
        [wheel_premiums], partition_key="2026-11-23", resources=res, instance=instance
    )
    stored = warehouse.read_frame("SELECT DISTINCT scan_date FROM stock_premiums")
    marks = warehouse.read_frame("SELECT symbol, scan_date FROM stock_premium_scans")
    warehouse.dispose()
    assert {str(d)[:10] for d in stored["scan_date"]} == {"2026-11-24"}
    assert {str(d)[:10] for d in marks["scan_date"]} == {"2026-11-24"} and len(marks) > 0
