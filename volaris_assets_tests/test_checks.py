"""Asset checks on real materializations: they pass on what the pipeline writes and fail when bad
rows are written straight into the warehouse."""

from collections.abc import Sequence
from datetime import datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets.options.assets import option_chains
from volaris_assets.options.checks import option_checks, quotes_not_crossed
from volaris_assets.prices import checks as price_checks_module
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.prices.checks import minute_bars_on_session_grid, price_checks
from volaris_assets.prices.definitions import daily_bars_job
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.scan.checks import scan_checks
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.universe.checks import universe_checks
from volaris_assets.volatility.checks import volatility_checks
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import execute, run_checks, scalar
from volaris_assets_tests.pipeline_support import (
    SESSION,
    SNAPSHOT,
    materialize_all,
    resources,
    sandbox_market,
)
from volaris_assets_tests.sandbox_fixtures import faults

EARLY_CLOSE = "2025-12-24"  # NYSE closed at 13:00 ET


def checks_on(
    asset: dg.AssetsDefinition, checks: Sequence[dg.AssetChecksDefinition]
) -> list[dg.AssetChecksDefinition]:
    return [c for c in checks if {k.asset_key for k in c.check_keys} == {asset.key}]


def test_option_chain_checks_catch_crossed_quotes_and_wild_iv(
    warehouse_url, small_universe, instance
):
    res = resources(warehouse_url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    result = dg.materialize(
        [option_chains, *option_checks], partition_key=SNAPSHOT, resources=res, instance=instance
    )
    assert all(e.passed for e in result.get_asset_check_evaluations())
    crossed = scalar(warehouse_url, "SELECT min(occ_symbol) FROM option_snapshots")
    negative = scalar(warehouse_url, "SELECT max(occ_symbol) FROM option_contracts")
    execute(
        warehouse_url,
        "UPDATE option_snapshots SET bid = ask + 0.5 WHERE occ_symbol = :o",
        o=crossed,
    )
    execute(
        warehouse_url, "UPDATE option_contracts SET bid = -0.05 WHERE occ_symbol = :o", o=negative
    )
    execute(
        warehouse_url,
        "UPDATE option_snapshots SET implied_volatility = 9.0 WHERE occ_symbol = :o",
        o=negative,
    )

    found = run_checks(option_checks, instance, res, SNAPSHOT)

    quotes = found["option_chains:quotes_not_crossed"]
    assert not quotes.passed and quotes.severity == dg.AssetCheckSeverity.ERROR
    assert quotes.metadata["violations"].value == {
        "crossed": 1,
        "negative_ask": 0,
        "negative_bid": 1,
    }
    assert quotes.metadata["examples"].value == {"crossed": [crossed], "negative_bid": [negative]}
    iv = found["option_chains:implied_volatility_in_bounds"]
    assert not iv.passed and iv.metadata["violations"].value["too_high"] == 1
    assert found["option_chains:symbol_coverage"].passed
    assert next(iter(quotes_not_crossed.check_specs)).blocking


def test_coverage_fails_on_partial_runs_and_heals_with_a_retry(
    sqlite_warehouse_url, small_universe, instance, clean_sandbox
):
    """The real job (asset and its partitioned checks in one run) against
    a sandbox where some symbols fail on both providers."""
    market = MarketDataResource(
        capability="daily",
        **sandbox_market(clean_sandbox.settings(), "databento,alpaca", retry_attempts=1),
    )
    res = {**resources(sqlite_warehouse_url), "daily_data": market}
    defs = dg.Definitions(
        assets=[sp500_constituents, daily_bars],
        asset_checks=checks_on(daily_bars, price_checks),
        jobs=[daily_bars_job],
        resources=res,
    )
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    job = defs.resolve_job_def("daily_bars_job")
    clean_sandbox.set_faults(faults("server_error", 0.5))
    partial = job.execute_in_process(instance=instance, partition_key="2026-03-10")
    checks = {e.check_name: e for e in partial.get_asset_check_evaluations()}
    assert set(checks) == {"symbol_coverage", "daily_bars_consistent"}
    coverage = checks["symbol_coverage"]
    failed = coverage.metadata["failed_symbols"].value
    assert not coverage.passed and 0 < len(failed) < len(small_universe)
    assert coverage.metadata["coverage"].value == round(1 - len(failed) / 6, 4)
    assert checks["daily_bars_consistent"].passed

    clean_sandbox.set_faults("none")
    retry = job.execute_in_process(
        instance=instance,
        partition_key="2026-03-10",
        run_config={"ops": {"daily_bars": {"config": {"symbols": failed}}}},
    )
    healed = {e.check_name: e for e in retry.get_asset_check_evaluations()}["symbol_coverage"]
    assert healed.passed and healed.metadata["runs"].value == 2
    assert healed.metadata["symbols_total"].value == len(small_universe)


def test_minute_grid_respects_the_early_close(
    sqlite_warehouse_url, small_universe, instance, monkeypatch
):
    monkeypatch.setattr(price_checks_module, "SYMBOLS_PER_READ", 2)  # reads in three batches
    res = resources(sqlite_warehouse_url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    result = dg.materialize(
        [intraday_bars, minute_bars_on_session_grid],
        partition_key=EARLY_CLOSE,
        resources=res,
        instance=instance,
    )
    grid = result.get_asset_check_evaluations()[0]
    assert grid.passed, grid.description
    assert grid.metadata["symbol_sessions"].value == len(small_universe)
    assert (
        scalar(
            sqlite_warehouse_url,
            "SELECT count(*) FROM price_bars WHERE timeframe = '1m' AND symbol = 'AAPL'",
        )
        == 210
    )  # 09:30-13:00, not 390

    session = calendar.session(calendar.session_day(EARLY_CLOSE))
    warehouse = Warehouse(sqlite_warehouse_url)

    def at(hour: int, minute: int, second: int = 0) -> datetime:
        local = datetime(2025, 12, 24, hour, minute, second, tzinfo=calendar.NY)
        return warehouse.instant(local.astimezone(calendar.UTC))

    execute(
        sqlite_warehouse_url,
        "DELETE FROM price_bars WHERE symbol = 'AAPL' AND timeframe = '1m' "
        "AND ts >= :a AND ts < :b",
        a=at(11, 0),
        b=at(11, 20),
    )
    for symbol, stamp in (("MSFT", at(10, 0, 30)), ("KO", at(13, 30))):
        execute(
            sqlite_warehouse_url,
            "INSERT INTO price_bars (symbol, timeframe, ts, open, high, low, close, volume, "
            "provider) VALUES (:s, '1m', :t, 10, 10, 10, 10, 1, 'test')",
            s=symbol,
            t=stamp,
        )
    assert session.close.astimezone(calendar.NY).hour == 13

    found = run_checks([minute_bars_on_session_grid], instance, res, EARLY_CLOSE)
    grid = found["intraday_bars:minute_bars_on_session_grid"]
    assert not grid.passed and grid.severity == dg.AssetCheckSeverity.ERROR
    assert grid.metadata["gappy_symbols"].value == ["AAPL"]
    assert grid.metadata["misplaced_symbols"].value == ["KO", "MSFT"]
    assert grid.metadata["missing_minutes"].value == 20
    warehouse.dispose()


def test_rerunning_a_complete_session_fetches_nothing_and_keeps_its_coverage(
    warehouse_url, small_universe, instance
):
    """After the close every symbol is up to date: a re-run (the schedule's last tick, a manual
    refresh) must not record empty answers as failures over the partition's good outcomes."""
    res = resources(warehouse_url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    checks = checks_on(intraday_bars, price_checks)
    runs = [
        dg.materialize(
            [intraday_bars, *checks], partition_key=EARLY_CLOSE, resources=res, instance=instance
        )
        for _ in range(2)
    ]
    first, again = (run.asset_materializations_for_node("intraday_bars")[0] for run in runs)
    assert first.metadata["symbols_ok"].value == len(small_universe)
    assert again.metadata["symbols_total"].value == 0
    assert again.metadata["up_to_date_symbols"].value == len(small_universe)
    found = {e.check_name: e for e in runs[1].get_asset_check_evaluations()}
    assert found["symbol_coverage"].passed, found["symbol_coverage"].description
    assert found["symbol_coverage"].metadata["symbols_total"].value == len(small_universe)
    assert found["minute_bars_on_session_grid"].passed
    assert (
        scalar(
            warehouse_url,
            "SELECT count(*) FROM sync_stock_results WHERE asset = 'intraday_bars' "
            "AND status != 'ok'",
        )
        == 0
    )


def test_session_checks_pass_on_the_pipeline_and_fail_on_bad_rows(
    sqlite_warehouse_url, small_universe, instance
):
    url = sqlite_warehouse_url
    materialize_all(url, instance)
    res = resources(url)
    checks = [*checks_on(daily_bars, price_checks)[1:], *volatility_checks, *scan_checks]
    good = run_checks(checks, instance, res, SESSION)
    assert len(good) == 5 and all(e.passed for e in good.values()), {
        name: e.description for name, e in good.items() if not e.passed
    }

    execute(url, "UPDATE price_bars SET high = close - 1 WHERE symbol = 'KO' AND timeframe = '1d'")
    execute(url, "UPDATE iv_metrics SET iv_rank = 140 WHERE symbol = 'MSFT'")
    execute(
        url,
        "UPDATE stock_premiums SET bid = ask + 0.1 WHERE symbol = "
        "(SELECT min(symbol) FROM stock_premiums)",
    )
    bad = run_checks(checks, instance, res, SESSION)
    assert bad["daily_bars:daily_bars_consistent"].metadata["examples"].value == {
        "high_below_body": ["KO"]
    }
    assert bad["iv_metrics:iv_metrics_in_bounds"].metadata["examples"].value == {
        "iv_rank_out_of_range": ["MSFT"]
    }
    assert bad["wheel_premiums:premiums_sellable"].metadata["violations"].value["crossed"] >= 1
    broken = {"daily_bars", "iv_metrics", "wheel_premiums"}
    assert {name.split(":")[0] for name, e in bad.items() if not e.passed} == broken
    assert bad["iv_metrics:symbol_coverage"].passed  # coverage counts outcomes, not values


def test_a_collapsed_universe_blocks_the_scan_universe(
    sqlite_warehouse_url, small_universe, instance, monkeypatch
):
    res = resources(sqlite_warehouse_url)
    assets = [sp500_constituents, scan_universe, *universe_checks]
    first_load = dg.materialize(assets, resources=res, instance=instance)
    assert all(e.passed for e in first_load.get_asset_check_evaluations())

    monkeypatch.setenv("VOLARIS_UNIVERSE", "AAPL,MSFT")
    collapsed = dg.materialize(assets, resources=res, instance=instance, raise_on_error=False)
    assert not collapsed.success
    check = collapsed.get_asset_check_evaluations()[0]
    assert check.asset_key == sp500_constituents.key and not check.passed
    assert check.metadata["previous_symbols"].value == len(small_universe)
    materialized = {e.asset_key for e in collapsed.get_asset_materialization_events()}
    assert materialized == {sp500_constituents.key}  # scan_universe never ran
    scan = scalar(sqlite_warehouse_url, "SELECT count(*) FROM tickers WHERE in_scan_universe")
    assert scan == len(small_universe)
