"""Real provider clients, over real HTTP to a faulty sandbox, inside real materializations."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest

from volaris_assets.options.assets import option_chains
from volaris_assets.providers.base import ErrorCategory
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import metadata, resources, sandbox_market

# The sandbox renders the market at 2026-03-11 15:00 UTC, 11:00 ET (sandbox_fixtures.SANDBOX_AS_OF):
# a live chain stands for a window up to 45 trading minutes before its provider's clock.
SNAPSHOT = "2026-03-11-10:45"
SESSION = "2026-03-11"
CATEGORIES = {c.value for c in ErrorCategory}


def run_chain_assets(url, instance, settings, providers="schwab,polygon", **tuning):
    res = resources(url, **sandbox_market(settings, providers, **tuning))
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    chains = dg.materialize(
        [option_chains], partition_key=SNAPSHOT, resources=res, instance=instance
    )
    scan = dg.materialize([wheel_premiums], partition_key=SESSION, resources=res, instance=instance)
    return chains, scan


@pytest.mark.parametrize("profile", ["hostile"])
def test_faulty_providers_every_symbol_accounted_for(
    clean_sandbox, sqlite_warehouse_url, small_universe, instance, profile
):
    clean_sandbox.set_faults(f"{profile},latency_ms=0-5")
    chains, scan = run_chain_assets(sqlite_warehouse_url, instance, clean_sandbox.settings())
    assert chains.success and scan.success
    warehouse = Warehouse(sqlite_warehouse_url)
    outcomes = warehouse.read_frame("SELECT * FROM sync_stock_results")
    for asset in ("option_chains", "wheel_premiums"):
        rows = outcomes[outcomes["asset"] == asset]
        assert sorted(rows["symbol"]) == sorted(small_universe)  # nobody silently missing
        failed = rows[rows["status"] != "ok"]
        assert set(failed["error_type"]) <= CATEGORIES
        assert failed["error_message"].notna().all()
        assert set(rows.loc[rows["status"] == "ok", "provider"]) <= {"schwab", "polygon"}
    written = warehouse.read_frame("SELECT DISTINCT symbol FROM option_contracts")
    ok = outcomes[(outcomes["asset"] == "option_chains") & (outcomes["status"] == "ok")]
    assert set(written["symbol"]) == set(ok["symbol"])
    crossed = warehouse.read_frame("SELECT count(*) AS n FROM option_contracts WHERE bid > ask")
    assert crossed["n"][0] == 0
    meta = metadata(chains, "option_chains")
    assert meta["symbols_ok"] + meta["symbols_failed"] == len(small_universe)
    assert clean_sandbox.stats.count() > 2 * len(small_universe)  # real HTTP happened


def test_the_seed_scan_runs_on_robinhood(
    clean_sandbox, sqlite_warehouse_url, small_universe, instance
):
    """Robinhood was the seed scan's primary source: snapshots and the wheel scan through its
    client, over HTTP to the sandbox, inside real materializations."""
    chains, scan = run_chain_assets(
        sqlite_warehouse_url,
        instance,
        clean_sandbox.settings(),
        providers="robinhood",
        rate_limits="robinhood=500/1",
        # One Robinhood chain is a dozen requests (instruments, their pages, market data in
        # batches), all inside one attempt's timeout, against a sandbox on this process's GIL:
        # 5 s timed out every symbol on a 2-core host half as fast as the Xeons.
        request_timeout_s=20.0,
    )
    assert chains.success and scan.success
    warehouse = Warehouse(sqlite_warehouse_url)
    outcomes = warehouse.read_frame("SELECT asset, status, provider FROM sync_stock_results")
    assert (outcomes["status"] == "ok").all() and set(outcomes["provider"]) == {"robinhood"}
    assert len(outcomes) == 2 * len(small_universe)
    contracts = warehouse.read_frame("SELECT DISTINCT symbol, provider FROM option_contracts")
    assert sorted(contracts["symbol"]) == sorted(small_universe)
    assert set(contracts["provider"]) == {"robinhood"}
    assert metadata(scan, "wheel_premiums")["symbols_ok"] == len(small_universe)


def test_primary_down_falls_back_to_polygon(
    clean_sandbox, sqlite_warehouse_url, small_universe, instance
):
    settings = clean_sandbox.settings()
    settings["SCHWAB_API_BASE"] = "http://127.0.0.1:9"  # nothing listens: connection refused
    chains, _ = run_chain_assets(sqlite_warehouse_url, instance, settings)
    outcomes = Warehouse(sqlite_warehouse_url).read_frame(
        "SELECT provider, status FROM sync_stock_results WHERE asset = 'option_chains'"
    )
    assert (outcomes["status"] == "ok").all()
    assert set(outcomes["provider"]) == {"polygon"}
    assert metadata(chains, "option_chains")["provider"] == "polygon"


def test_schwab_refresh_token_age_in_metadata(
    clean_sandbox, sqlite_warehouse_url, small_universe, instance
):
    issued = (datetime.now(UTC) - timedelta(days=6)).isoformat()
    chains, _ = run_chain_assets(
        sqlite_warehouse_url,
        instance,
        clean_sandbox.settings(),
        schwab_refresh_token_issued_at=issued,
    )
    assert metadata(chains, "option_chains")["schwab_refresh_token_days_left"] == pytest.approx(
        1.0, abs=0.01
    )
    logs = [e.message for e in instance.all_logs(chains.run_id) if e.level >= 30]
    assert any("Schwab refresh token lapses" in m for m in logs)
