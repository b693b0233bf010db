"""IV history bootstrap: past chains from the sandbox's Databento and Polygon wire formats over
real HTTP, and the asset on SQLite and PostgreSQL feeding `iv_metrics`' rank and percentile."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, date, datetime

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from volaris_assets import calendar
from volaris_assets.ingest.validation import validate_chain
from volaris_assets.providers import databento, polygon
from volaris_assets.providers.base import CHAIN_COLUMNS
from volaris_assets.providers.past_chains import HistoryChain, near_the_money
from volaris_assets.providers.rate_limit import RateLimit
from volaris_assets.providers.resilience import ResilienceRegistry
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.resources.market_data import HistoryDataResource
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.volatility.bootstrap import iv_history_bootstrap
from volaris_assets.volatility.metrics import chain_metrics
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import metadata, resources, sandbox_market
from volaris_assets_tests.sandbox_fixtures import SANDBOX_AS_OF, outcome

# A Monday two sessions before the sandbox clock (SANDBOX_AS_OF, a Wednesday mid-session).
PAST_DAY = date(2026, 3, 9)
LATEST = date(2026, 11, 24)
HISTORY = 20  # sessions bootstrapped before LATEST: with LATEST, quant.iv_metrics.MIN_OBSERVATIONS
SYMBOLS = ["AAPL", "BRK.B", "XOM"]


def run(call):
    return asyncio.run(call)


async def close_chain(client, symbol: str, day: date) -> pd.DataFrame:
    try:
        return await client.session_close_chain(symbol, day)
    finally:
        await client.aclose()


def simulated_close(market: SimulatedMarket, symbol: str, day: date) -> pd.DataFrame:
    return market.option_chain(symbol, calendar.session(day).close).set_index("occ_symbol")


def daily_close(market: SimulatedMarket, symbol: str, day: date) -> float:
    start = datetime.combine(day, datetime.min.time(), UTC)
    bars = market.bars(symbol, "1d", start, start + pd.Timedelta(days=1))
    return float(bars["close"].iloc[0])


# --- the clients against the sandbox's wire formats ------------------------------------------


def test_databento_close_chain_is_the_closing_nbbo_of_every_contract(clean_sandbox, market):
    chain = run(close_chain(databento.create(clean_sandbox.settings()), "AAPL", PAST_DAY))
    expected = simulated_close(market, "AAPL", PAST_DAY)
    got = chain.set_index("occ_symbol").loc[expected.index]
    np.testing.assert_allclose(got["bid"], expected["bid"])
    np.testing.assert_allclose(got["ask"], expected["ask"])
    np.testing.assert_allclose(got["strike"], expected["strike"])
    assert (got["right"] == expected["right"]).all()
    assert (got["expiration"] == expected["expiration"]).all()
    assert got["underlying_price"].eq(daily_close(market, "AAPL", PAST_DAY)).all()
    assert got["implied_volatility"].isna().all() and got["delta"].isna().all()
    assert (chain["quote_ts"] == pd.Timestamp(calendar.session(PAST_DAY).close)).all()
    # definitions, the closing minute's quotes, the underlying's daily bar
    assert clean_sandbox.stats.count("databento") == 3


def test_polygon_close_chain_asks_only_what_the_30_day_atm_iv_reads(clean_sandbox, market):
    chain = run(close_chain(polygon.create(clean_sandbox.settings()), "AAPL", PAST_DAY))
    spot = daily_close(market, "AAPL", PAST_DAY)
    expected = near_the_money(
        simulated_close(market, "AAPL", PAST_DAY).reset_index(), spot, PAST_DAY, 1
    )
    assert sorted(chain["occ_symbol"]) == sorted(expected["occ_symbol"]) and len(chain) == 8
    days = chain["dte"].unique()
    assert days.min() <= 30 <= days.max() and len(days) == 2
    # a trade close (the sandbox trades at mid) stands for both sides
    got = chain.set_index("occ_symbol").loc[expected["occ_symbol"]]
    np.testing.assert_allclose(got["mark_price"], expected["mark_price"].to_numpy())
    assert (got["bid"] == got["ask"]).all() and (got["provider"] == "polygon").all()
    # the underlying's day, the contracts as of the day (in pages), one aggregate per contract
    paths = Counter()
    for (_, path, _), count in clean_sandbox.stats.requests.items():
        paths["option" if "/O:" in path else path.split("/")[2]] += count
    assert paths["option"] == 8 and paths["aggs"] == 1 and paths["reference"] >= 1


@pytest.mark.parametrize("module", [databento, polygon])
def test_no_history_for_an_unknown_symbol_or_a_session_not_closed_yet(clean_sandbox, module):
    settings = clean_sandbox.settings()
    assert run(outcome(close_chain(module.create(settings), "ZZZZ", PAST_DAY))) == "no_data"
    today = SANDBOX_AS_OF.date()  # the session trades until 16:00 ET, after the sandbox clock
    assert run(outcome(close_chain(module.create(settings), "AAPL", today))) == "no_data"


def test_every_request_of_a_past_chain_takes_a_turn_of_the_budget(clean_sandbox):
    limits = {name: RateLimit(per_second=1000, burst=1000) for name in ("databento", "polygon")}
    registry = ResilienceRegistry(limits)
    settings = clean_sandbox.settings()

    async def fetch() -> None:
        chain = HistoryChain.of(
            registry.chain([databento.create(settings), polygon.create(settings)])
        )
        try:
            await chain.session_close_chain("KO", PAST_DAY)
            await chain.rotated("polygon").session_close_chain("KO", PAST_DAY)
        finally:
            await chain.aclose()

    run(fetch())
    for name in ("databento", "polygon"):
        assert registry.limiter(name).acquired == clean_sandbox.stats.count(name) > 1


# --- the asset ---------------------------------------------------------------------------------


def history_keys() -> list[str]:
    days = [s.day for s in calendar.sessions_between(date(2026, 9, 1), LATEST)]
    return [d.isoformat() for d in days[-HISTORY - 1 : -1]]


def range_tags(keys: list[str]) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": keys[0],
        "dagster/asset_partition_range_end": keys[-1],
    }


def bootstrap(res: dict, instance, keys: list[str], **config) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        [iv_history_bootstrap],
        resources=res,
        instance=instance,
        tags=range_tags(keys),
        run_config={"ops": {"iv_history_bootstrap": {"config": config}}} if config else None,
    )
    assert result.success
    return result


def test_bootstrap_gives_the_latest_session_its_rank(warehouse_url, monkeypatch, instance):
    monkeypatch.setenv("VOLARIS_UNIVERSE", ",".join(SYMBOLS))
    res = {**resources(warehouse_url), "history_data": HistoryDataResource()}
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    # A fresh install measures today first: no history, so no rank.
    latest = LATEST.isoformat()
    today = dg.materialize([iv_metrics], partition_key=latest, resources=res, instance=instance)
    assert today.success
    warehouse = Warehouse(warehouse_url)
    query = f"SELECT * FROM iv_metrics WHERE date = '{latest}' ORDER BY symbol"
    before = warehouse.read_frame(query)
    assert before["iv_history_days"].eq(1).all() and before["iv_rank"].isna().all()

    keys = history_keys()
    result = bootstrap(res, instance, keys)
    meta = metadata(result, "iv_history_bootstrap")
    assert meta["symbols_ok"] == len(SYMBOLS) and meta["sessions_unavailable"] == 0

    history = warehouse.read_frame(f"SELECT * FROM iv_metrics WHERE date < '{latest}'")
    assert len(history) == len(SYMBOLS) * HISTORY
    assert (
        history["atm_iv_30d"].between(0.05, 3).all() and (history["provider"] == "simulated").all()
    )
    assert history["iv_7d"].isna().all()  # a past session's term structure is not made up
    after = warehouse.read_frame(query)
    pd.testing.assert_series_equal(after["atm_iv_30d"], before["atm_iv_30d"])  # not replaced
    assert after["iv_history_days"].eq(HISTORY + 1).all()
    assert after["iv_rank"].between(0, 100).all() and after["iv_percentile"].between(0, 100).all()

    # The same number as the live definition (provider IVs on the full chain), solved from mid.
    day = date.fromisoformat(keys[-1])
    close = calendar.session(day).close
    for symbol in SYMBOLS:
        chain = SimulatedMarket().option_chain(symbol, close)
        live = chain_metrics(validate_chain(chain[list(CHAIN_COLUMNS[:-1])], close).frame, close)
        stored = history[(history["symbol"] == symbol) & (history["date"].astype(str) == keys[-1])]
        assert stored["atm_iv_30d"].iloc[0] == pytest.approx(live["atm_iv_30d"], rel=5e-3)

    # A re-run asks nothing and changes nothing.
    again = metadata(bootstrap(res, instance, keys), "iv_history_bootstrap")
    assert again["rows_written"] == 0 and again["symbols_ok"] == len(SYMBOLS)
    final = warehouse.read_frame(query)
    pd.testing.assert_frame_equal(
        final.drop(columns="updated_at"), after.drop(columns="updated_at")
    )
    warehouse.dispose()


def test_bootstrap_through_the_wire_falls_back_and_keeps_the_key_secret(
    warehouse_url, clean_sandbox, small_universe, instance
):
    wrong_key = "db-wrong-key-never-logged"
    settings = {**clean_sandbox.settings(), "DATABENTO_API_KEY": wrong_key}
    history = HistoryDataResource(**sandbox_market(settings, "databento,polygon"))
    res = {**resources(warehouse_url), "history_data": history}
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    keys = ["2026-03-05", "2026-03-06", PAST_DAY.isoformat()]
    result = bootstrap(res, instance, keys, symbols=["AAPL", "KO"])
    meta = metadata(result, "iv_history_bootstrap")
    assert meta["symbols_ok"] == 2 and meta["provider"] == "polygon"

    warehouse = Warehouse(warehouse_url)
    rows = warehouse.read_frame("SELECT * FROM iv_metrics ORDER BY symbol, date")
    assert len(rows) == 6 and (rows["provider"] == "polygon").all()
    assert rows["atm_iv_30d"].between(0.05, 3).all()
    outcomes = warehouse.read_frame("SELECT * FROM sync_stock_results")
    assert (outcomes["status"] == "ok").all()
    everything = (
        outcomes.to_string() + str(meta) + "".join(str(e) for e in instance.all_logs(result.run_id))
    )
    assert wrong_key not in everything
    warehouse.dispose()


def test_malformed_history_is_rejected_and_counted_not_a_crash(
    sqlite_warehouse_url, clean_sandbox, small_universe, instance
):
    clean_sandbox.set_faults({"malformed": 1.0, "row_fraction": 0.05})
    history = HistoryDataResource(**sandbox_market(clean_sandbox.settings(), "databento"))
    res = {**resources(sqlite_warehouse_url), "history_data": history}
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    result = bootstrap(res, instance, [PAST_DAY.isoformat()], symbols=["AAPL", "XOM"])
    meta = metadata(result, "iv_history_bootstrap")
    warehouse = Warehouse(sqlite_warehouse_url)
    outcomes = warehouse.read_frame("SELECT * FROM sync_stock_results")
    ok = outcomes[outcomes["status"] == "ok"]
    assert meta["rows_rejected"] > 0 and ok["rows_rejected"].sum() == meta["rows_rejected"]
    # a corrupted record can also hide what it was about (its symbol, the underlying's bar)
    assert set(outcomes["error_type"].dropna()) <= {"bad_data", "no_data"}
    rows = warehouse.read_frame("SELECT * FROM iv_metrics")
    assert rows["atm_iv_30d"].dropna().between(0.05, 3).all()
    warehouse.dispose()
