"""Every asset materialized for a known session, on SQLite and on PostgreSQL."""

from datetime import date, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from volaris_assets import calendar
from volaris_assets.checks.coverage import coverage_check
from volaris_assets.options.assets import option_chains
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import run_checks
from volaris_assets_tests.pipeline_support import (
    SESSION,
    SNAPSHOT,
    materialize_all,
    metadata,
    resources,
)

TABLES = (
    "tickers",
    "price_bars",
    "option_contracts",
    "option_snapshots",
    "iv_metrics",
    "stock_premiums",
)


def range_tags(start: str, end: str) -> dict[str, str]:
    """Tags that make one run cover a partition range (what a single-run backfill launches)."""
    return {
        "dagster/asset_partition_range_start": start,
        "dagster/asset_partition_range_end": end,
    }


def snapshot_of(url: str) -> dict[str, pd.DataFrame]:
    """Every contract table, sorted and without write timestamps, for row-for-row comparison."""
    warehouse = Warehouse(url)
    out = {}
    for table in TABLES:
        frame = warehouse.read_frame(f"SELECT * FROM {table}")
        frame = frame.drop(columns=[c for c in ("updated_at",) if c in frame])
        out[table] = frame.sort_values(list(frame.columns[:3])).reset_index(drop=True)
    warehouse.dispose()
    return out


def test_every_asset_matches_the_simulated_market(warehouse_url, small_universe, instance):
    results = materialize_all(warehouse_url, instance)
    warehouse = Warehouse(warehouse_url)
    market = SimulatedMarket()

    tickers = warehouse.read_frame("SELECT * FROM tickers ORDER BY liquidity_rank")
    assert sorted(tickers["symbol"]) == sorted(small_universe)
    assert tickers["in_sp500"].astype(bool).all() and tickers["in_scan_universe"].astype(bool).all()

    bars = warehouse.read_frame("SELECT * FROM price_bars WHERE symbol = 'AAPL'")
    bars["ts"] = pd.to_datetime(bars["ts"], utc=True)
    minutes = market.minute_bars("AAPL", date(2026, 11, 24))
    one_minute = bars[bars["timeframe"] == "1m"].sort_values("ts")
    assert len(one_minute) == 390
    np.testing.assert_allclose(one_minute["close"], minutes["close"])
    daily = bars[bars["timeframe"] == "1d"].iloc[0]
    assert daily["open"] == minutes["open"].iloc[0] and daily["close"] == minutes["close"].iloc[-1]
    assert daily["high"] == minutes["high"].max() and daily["volume"] == minutes["volume"].sum()
    assert (bars["timeframe"] == "5m").sum() == 78

    snapshot = calendar.snapshot_instant(SNAPSHOT)
    expected = market.option_chain("BRK.B", snapshot).set_index("occ_symbol")
    stored = warehouse.read_frame("SELECT * FROM option_contracts WHERE symbol = 'BRK.B'")
    stored = stored.set_index("occ_symbol").loc[expected.index]
    np.testing.assert_allclose(stored["mark_price"], expected["mark_price"])
    np.testing.assert_allclose(stored["implied_volatility"], expected["implied_volatility"])
    np.testing.assert_allclose(stored["delta"], expected["delta"])
    assert (stored["provider"] == "simulated").all()

    iv = warehouse.read_frame("SELECT * FROM iv_metrics")
    assert len(iv) == len(small_universe) and iv["atm_iv_30d"].between(0.05, 3).all()
    assert iv["expected_move"].gt(0).all()

    premiums = warehouse.read_frame("SELECT * FROM stock_premiums")
    assert premiums["delta"].between(-0.35, -0.15).all() and premiums["premium"].gt(0).all()
    assert set(premiums["dte"]) <= {int(d) for d in premiums["dte"]}  # one expiry per symbol
    assert premiums.groupby("symbol")["expiration"].nunique().eq(1).all()

    outcomes = warehouse.read_frame("SELECT * FROM sync_stock_results")
    per_asset = outcomes.groupby("asset")["symbol"].nunique()
    assert per_asset.to_dict() == {
        a: len(small_universe)
        for a in ("daily_bars", "intraday_bars", "iv_metrics", "option_chains", "wheel_premiums")
    }
    assert (outcomes["status"] == "ok").all()
    assert set(outcomes["partition"]) == {SESSION, SNAPSHOT}
    scan = metadata(results[2], "wheel_premiums")
    assert scan["symbols_ok"] == len(small_universe) and scan["provider"] == "simulated"
    assert scan["peak_rss_mb"] > 50 and scan["top_premiums"]
    warehouse.dispose()


def test_rerun_is_idempotent(warehouse_url, small_universe, instance):
    materialize_all(warehouse_url, instance)
    first = snapshot_of(warehouse_url)
    materialize_all(warehouse_url, instance)
    second = snapshot_of(warehouse_url)
    for table in TABLES:
        pd.testing.assert_frame_equal(first[table], second[table], check_like=True)
        assert len(first[table]) > 0, table


def test_run_config_restricts_symbols(sqlite_warehouse_url, small_universe, instance):
    res = resources(sqlite_warehouse_url)
    materialize_all(sqlite_warehouse_url, instance)
    result = dg.materialize(
        [option_chains],
        partition_key="2026-11-24-10:00",
        resources=res,
        instance=instance,
        run_config={"ops": {"option_chains": {"config": {"symbols": ["msft", "BRK/B"]}}}},
    )
    assert metadata(result, "option_chains")["symbols_total"] == 2


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"symbols": ["ZZZZ"]}, "ZZZZ is not in the wheel-scan universe (asset scan_universe)"),
        ({"symbols": ["'; DROP TABLE tickers;--"]}, "not a US ticker"),
        ({"delta_min": -0.1, "delta_max": -0.3}, "delta band"),
    ],
)
def test_bad_run_config_fails_clearly(
    sqlite_warehouse_url, small_universe, instance, config, message
):
    materialize_all(sqlite_warehouse_url, instance)
    result = dg.materialize(
        [wheel_premiums],
        partition_key=SESSION,
        resources=resources(sqlite_warehouse_url),
        instance=instance,
        run_config={"ops": {"wheel_premiums": {"config": config}}},
        raise_on_error=False,
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert message in str(failure.event_specific_data.error)
    tickers = Warehouse(sqlite_warehouse_url).read_frame("SELECT count(*) AS n FROM tickers")
    assert tickers["n"][0] == len(small_universe)


def test_backfill_range_runs_once(sqlite_warehouse_url, small_universe, instance):
    from volaris_assets.prices.assets import daily_bars

    res = resources(sqlite_warehouse_url)
    materialize_all(sqlite_warehouse_url, instance)
    result = dg.materialize(
        [daily_bars],
        tags=range_tags("2026-11-02", "2026-11-24"),
        resources=res,
        instance=instance,
    )
    assert result.success
    warehouse = Warehouse(sqlite_warehouse_url)
    labels = warehouse.read_frame(
        "SELECT DISTINCT partition FROM sync_stock_results WHERE asset = 'daily_bars'"
    )
    assert "2026-11-02..2026-11-24" in set(labels["partition"])
    bars = warehouse.read_frame("SELECT count(*) AS n FROM price_bars WHERE timeframe = '1d'")
    assert bars["n"][0] == 17 * len(small_universe)  # 17 sessions in the range
    inside = run_checks([coverage_check(daily_bars)], instance, res, "2026-11-10")
    coverage = inside["daily_bars:symbol_coverage"]  # only the range's run covers that session
    assert coverage.passed and coverage.metadata["symbols_total"].value == len(small_universe)


def test_iv_rank_uses_history(sqlite_warehouse_url, small_universe, instance):
    from volaris_assets.volatility.assets import iv_metrics

    res = resources(sqlite_warehouse_url)
    materialize_all(sqlite_warehouse_url, instance)
    result = dg.materialize(
        [iv_metrics],
        tags=range_tags("2026-09-01", "2026-11-24"),
        resources=res,
        instance=instance,
    )
    assert result.success
    iv = Warehouse(sqlite_warehouse_url).read_frame(
        "SELECT * FROM iv_metrics WHERE symbol = 'AAPL' ORDER BY date"
    )
    last = iv.iloc[-1]
    window = iv["atm_iv_30d"].to_numpy()
    expected_rank = (window[-1] - window.min()) / (window.max() - window.min()) * 100
    assert last["iv_rank"] == pytest.approx(expected_rank, abs=1e-6)
    # Days below today over the window's earlier sessions x 100 (quant/iv_metrics.py, as
    # iv_history_bootstrap counts too): a new high is 100.
    below = (window[:-1] < window[-1]).sum()
    assert last["iv_percentile"] == pytest.approx(below / (len(window) - 1) * 100, abs=1e-6)
    assert iv["iv_rank"].iloc[:19].isna().all()  # fewer than 20 observations
    assert iv["iv_rank"].iloc[19:].notna().all()  # 19 earlier sessions and today
    assert datetime.fromisoformat(str(iv["date"].iloc[-1])).date() == date(2026, 11, 24)


def test_an_earlier_session_measured_later_re_ranks_the_sessions_after_it(
    warehouse_url, small_universe, instance
):
    """A backfill of iv_metrics for an earlier session deepens the history of every later one,
    as the bootstrap's writes do: their rank, percentile and depth are recomputed."""
    from volaris_assets.volatility.assets import iv_metrics

    res = resources(warehouse_url)
    materialize_all(warehouse_url, instance)
    for day in ("2026-11-20", "2026-11-23"):
        result = dg.materialize([iv_metrics], partition_key=day, resources=res, instance=instance)
        assert result.success
    warehouse = Warehouse(warehouse_url)
    depth = warehouse.read_frame(
        "SELECT date, iv_history_days FROM iv_metrics WHERE symbol = 'AAPL' ORDER BY date"
    )
    warehouse.dispose()
    assert depth["iv_history_days"].tolist() == [1, 2, 3]  # 11-20, 11-23, and 11-24 re-ranked
