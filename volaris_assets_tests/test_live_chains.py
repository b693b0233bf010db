"""A live provider's chain is never stored as a past window's or session's: refused by its
clock (its answers' `Date`), before any chain request once that clock is known."""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pytest

from volaris_assets import calendar
from volaris_assets.options.assets import option_chains
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources, sandbox_market

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
# The sandbox's clock is 2026-03-11 11:00 ET (sandbox_fixtures.SANDBOX_AS_OF): Monday's
# 10:00 window is 14 trading hours behind it, Wednesday's 10:30 half an hour.
PAST_SNAPSHOT, RECENT_SNAPSHOT = "2026-03-09-10:00", "2026-03-11-10:30"
CHAINS = "/marketdata/v1/chains"


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=calendar.NY)


@pytest.mark.parametrize(
    ("start", "end", "minutes"),
    [
        ("2026-03-13 15:30", "2026-03-16 10:00", 60),  # Friday's last half hour, Monday's first
        ("2026-11-25 15:00", "2026-11-27 14:00", 60 + 210),  # Thanksgiving, then a 13:00 close
        ("2026-03-11 11:00", "2026-03-11 10:00", 0),  # backwards
        ("2026-03-11 17:00", "2026-03-12 09:00", 0),  # a night
    ],
)
def test_market_time_counts_regular_hours_only(start, end, minutes):
    elapsed = calendar.market_time_between(ny(start), ny(end))
    assert elapsed.total_seconds() == minutes * 60


def _run(url, instance, sandbox, providers, asset, partition):
    # Two symbols in flight: the requests sent before the provider's first answer are two.
    res = resources(url, **sandbox_market(sandbox.settings(), providers, concurrency=2))
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    return dg.materialize(
        [asset], partition_key=partition, resources=res, instance=instance, raise_on_error=False
    )


def _outcomes(url: str, asset: str):
    warehouse = Warehouse(url)
    try:
        return warehouse.read_frame(
            "SELECT symbol, status, error_type, error_message, provider FROM sync_stock_results "
            f"WHERE asset = '{asset}'"
        )
    finally:
        warehouse.dispose()


def test_a_past_window_is_refused_by_a_live_provider_and_asked_for_no_more(
    clean_sandbox, warehouse_url, small_universe, instance
):
    result = _run(warehouse_url, instance, clean_sandbox, "schwab", option_chains, PAST_SNAPSHOT)
    assert not result.success
    outcomes = _outcomes(warehouse_url, "option_chains")
    assert sorted(outcomes["symbol"]) == sorted(small_universe)
    assert set(outcomes["error_type"]) == {"no_data"}
    message = outcomes["error_message"].iloc[0]
    assert "schwab serves only its current chain (2026-03-11 15:00 UTC by its clock)" in message
    assert "14.0 trading hours after the 2026-03-09 10:00 ET asked for" in message
    # Only the two chains asked for before the first answer (the token) taught the client its
    # provider's clock were sent; every other symbol was refused unsent.
    assert clean_sandbox.stats.count("schwab", CHAINS) == 2
    warehouse = Warehouse(warehouse_url)
    assert warehouse.read_frame("SELECT count(*) AS n FROM option_snapshots")["n"][0] == 0
    warehouse.dispose()


def test_a_past_window_falls_back_to_the_simulated_market_and_a_recent_one_is_served(
    clean_sandbox, sqlite_warehouse_url, small_universe, instance
):
    past = _run(
        sqlite_warehouse_url,
        instance,
        clean_sandbox,
        "schwab,simulated",
        option_chains,
        PAST_SNAPSHOT,
    )
    assert past.success
    outcomes = _outcomes(sqlite_warehouse_url, "option_chains")
    assert set(outcomes["provider"]) == {"simulated"} and set(outcomes["status"]) == {"ok"}
    assert clean_sandbox.stats.count("schwab", CHAINS) == 2
    recent = _run(
        sqlite_warehouse_url, instance, clean_sandbox, "schwab", option_chains, RECENT_SNAPSHOT
    )
    assert recent.success
    assert clean_sandbox.stats.count("schwab", CHAINS) == 2 + len(small_universe)


def test_a_past_session_is_not_scanned_from_a_live_chain(
    clean_sandbox, sqlite_warehouse_url, small_universe, instance
):
    result = _run(
        sqlite_warehouse_url, instance, clean_sandbox, "schwab", wheel_premiums, "2026-03-09"
    )
    assert not result.success
    outcomes = _outcomes(sqlite_warehouse_url, "wheel_premiums")
    assert set(outcomes["error_type"]) == {"no_data"}
    assert clean_sandbox.stats.count("schwab", CHAINS) == 2
