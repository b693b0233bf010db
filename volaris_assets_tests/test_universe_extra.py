"""ETFs, additive universes and index options, down to the warehouse.

The ETF list joins both universes by default and VOLARIS_UNIVERSE_EXTRA adds symbols without
replacing any; an index is sent to Schwab as `$SPX` and stored as `SPX`; SPY and QQQ get chains
and IV metrics like any stock; intraday IV has a table of its own, so IV rank history is built
from end-of-day values only.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, date, datetime, timedelta
from urllib.parse import unquote

import dagster as dg
import pandas as pd
import pytest

from volaris_assets import calendar
from volaris_assets.ingest.asset_support import IngestConfig, progress_log
from volaris_assets.ingest.validation import validate_chain
from volaris_assets.options.assets import option_chains
from volaris_assets.providers import polygon, schwab, yahoo
from volaris_assets.providers.base import ProviderError
from volaris_assets.providers.http import build_client
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.sandbox.market import SandboxMarket
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, to_provider
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.universe.constituents import ETFS
from volaris_assets.volatility.assets import iv_metrics, iv_metrics_intraday
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import metadata, resources
from volaris_assets_tests.sandbox_fixtures import (
    FAST_TIMEOUT_S,
    SANDBOX_AS_OF,
    assert_chain_matches,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

SESSION = "2026-11-24"
# Enough earlier sessions for IV rank (20 observations at least), replayed in one run.
HISTORY = calendar.sessions_between(date(2026, 10, 27), date(2026, 11, 23))
LAST_SNAPSHOT = "2026-11-24-15:45"
SYMBOLS = ["SPY", "QQQ", "SPX"]


def _read(url: str, query: str) -> pd.DataFrame:
    warehouse = Warehouse(url)
    try:
        return warehouse.read_frame(query)
    finally:
        warehouse.dispose()


def _universe(url: str, instance) -> tuple[dg.ExecuteInProcessResult, pd.DataFrame]:
    """Both universes materialized as the environment lists them, and the tickers by symbol."""
    result = dg.materialize(
        [sp500_constituents, scan_universe],
        resources={"warehouse": resources(url)["warehouse"]},
        instance=instance,
    )
    assert result.success
    tickers = _read(url, "SELECT symbol, name, sector, in_sp500, in_scan_universe FROM tickers")
    return result, tickers.set_index("symbol")


def test_extra_symbols_add_to_the_defaults(warehouse_url, instance, monkeypatch):
    monkeypatch.delenv("VOLARIS_UNIVERSE", raising=False)
    monkeypatch.setenv("VOLARIS_UNIVERSE_EXTRA", "arkk, SPX")
    result, tickers = _universe(warehouse_url, instance)
    etfs = [symbol for symbol, _, _ in ETFS]
    assert {"SPY", "QQQ", "IWM", "DIA", "XLK", "XLRE"} <= set(etfs)
    assert (tickers.loc[etfs, "sector"] == "ETF").all()
    assert tickers.loc[etfs + ["ARKK", "AAPL"], ["in_sp500", "in_scan_universe"]].all().all()
    # An index joins bars, chains and IV, not the wheel scan (its options settle in cash).
    assert tickers.loc["SPX"].to_dict() == {
        "name": "S&P 500 Index",
        "sector": "Index",
        "in_sp500": True,
        "in_scan_universe": False,
    }
    assert 495 + len(ETFS) + 2 <= int(tickers["in_sp500"].sum()) <= 510 + len(ETFS) + 2
    assert "VOLARIS_UNIVERSE_EXTRA" in metadata(result, "sp500_constituents")["source"]


def test_an_index_in_a_replacing_list_stays_out_of_the_wheel_scan(
    warehouse_url, instance, monkeypatch
):
    monkeypatch.setenv("VOLARIS_UNIVERSE", "AAPL, SPY, SPX")
    monkeypatch.delenv("VOLARIS_UNIVERSE_EXTRA", raising=False)
    result, tickers = _universe(warehouse_url, instance)
    assert sorted(tickers.index) == ["AAPL", "SPX", "SPY"]
    assert tickers.loc["SPX"].to_dict() == {
        "name": "S&P 500 Index",
        "sector": "Index",
        "in_sp500": True,
        "in_scan_universe": False,
    }
    assert tickers.loc[["AAPL", "SPY"], "in_scan_universe"].all()


def test_spy_and_qqq_get_chains_and_iv_and_intraday_iv_stays_out_of_history(
    warehouse_url, instance, monkeypatch, caplog
):
    """The defaults plus SPX on the simulated market: contracts and IV metrics for SPY, QQQ and
    SPX. An intraday measurement of the last snapshot equals the end-of-day value, yet only the
    end-of-day rows make up the history IV rank is computed against."""
    monkeypatch.delenv("VOLARIS_UNIVERSE", raising=False)
    monkeypatch.setenv("VOLARIS_UNIVERSE_EXTRA", "SPX")
    res = resources(warehouse_url)
    only = IngestConfig(symbols=SYMBOLS)

    def run(
        assets: list[dg.AssetsDefinition], partition: str | None = None, **tags
    ) -> dg.ExecuteInProcessResult:
        config = {a.key.to_user_string(): only for a in assets}
        result = dg.materialize(
            assets,
            partition_key=partition,
            run_config=dg.RunConfig(config) if partition or tags else None,
            resources=res,
            instance=instance,
            tags=tags or None,
        )
        assert result.success
        return result

    run([sp500_constituents])
    first, last = HISTORY[0].day.isoformat(), HISTORY[-1].day.isoformat()
    run(  # the history, replayed by the simulated market in one run
        [iv_metrics],
        **{"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
    )
    run([option_chains], LAST_SNAPSHOT)
    # Both measure the stored snapshot: no provider is asked. The end-of-day step could have
    # to ask one (a session without a snapshot), so it gives the slow-run estimate of a tiny
    # budget; the intraday step reads the warehouse only, so it does not.
    res["chain_data"] = MarketDataResource(capability="chain", rate_limits="simulated=1/3600")
    with caplog.at_level(logging.INFO, logger=progress_log.name):
        measured = run([iv_metrics_intraday, iv_metrics], SESSION)
    for asset in ("iv_metrics_intraday", "iv_metrics"):
        assert metadata(measured, asset)["requests_by_provider"] == {}
    estimates = [r.message for r in caplog.records if "budget of" in r.message]
    assert estimates and not any(m.startswith("iv_metrics_intraday") for m in estimates)

    contracts = _read(warehouse_url, "SELECT symbol, occ_symbol FROM option_contracts")
    assert set(contracts["symbol"]) == set(SYMBOLS)
    assert contracts.groupby("symbol").size().min() > 50
    spx = contracts.loc[contracts["symbol"] == "SPX", "occ_symbol"]
    assert spx.str.startswith("SPX   ").all()

    eod = _read(warehouse_url, "SELECT * FROM iv_metrics ORDER BY symbol, date")
    assert eod.groupby("symbol").size().to_dict() == dict.fromkeys(SYMBOLS, len(HISTORY) + 1)
    assert eod["atm_iv_30d"].notna().all()
    today = eod[pd.to_datetime(eod["date"]) == pd.Timestamp(SESSION)].set_index("symbol")
    assert (today["iv_history_days"] == len(HISTORY) + 1).all()
    assert today["iv_rank"].notna().all()

    intraday = _read(warehouse_url, "SELECT * FROM iv_metrics_intraday").set_index("symbol")
    assert sorted(intraday.index) == sorted(SYMBOLS)
    snapshot = calendar.snapshot_instant(LAST_SNAPSHOT)
    as_of = pd.to_datetime(intraday["as_of"], utc=True)
    assert (as_of == pd.Timestamp(snapshot)).all()
    for column in ("atm_iv_30d", "iv_rank", "iv_percentile", "iv_history_days"):
        pd.testing.assert_series_equal(
            intraday[column].sort_index(), today[column].sort_index(), check_dtype=False
        )


def test_index_symbols_take_each_providers_spelling_only_at_the_edge():
    assert normalize_symbol("$SPX") == normalize_symbol("$spx") == "SPX"
    assert normalize_symbol("^SPX") == normalize_symbol("I:NDX".replace("NDX", "SPX")) == "SPX"
    assert to_provider("SPX", "schwab") == "$SPX"
    assert to_provider("SPX", "yahoo") == "^SPX"
    assert to_provider("NDX", "polygon") == "I:NDX"
    assert to_provider("SPX", "tiingo") == "SPX"
    for raw in ("$AAPL", "$", "$$SPX", "^AAPL", "I:AAPL", "I:"):
        with pytest.raises(InvalidSymbol):
            normalize_symbol(raw)
    # The sandbox finds an index only where its provider would: `$SPX` at Schwab, not `SPX`.
    assert SandboxMarket.listed("$SPX", "schwab") == "SPX"
    assert SandboxMarket.listed("SPX", "schwab") is None
    assert SandboxMarket.listed("I:SPX", None) is None
    assert SandboxMarket.listed("SPX", None) == "SPX"


@pytest.mark.parametrize(
    ("module", "spelled"),
    [
        (schwab, "symbol=$SPX"),
        (polygon, "/v3/snapshot/options/I:SPX"),
        (yahoo, "/options/^SPX"),
    ],
)
def test_spx_chains_over_the_sandbox(clean_sandbox, market, module, spelled):
    """Each provider is asked for the index in its own spelling (Schwab `$SPX`, Polygon's
    snapshot path `I:SPX`, Yahoo `^SPX`) and echoes it so; the chain is stored as SPX."""
    urls: list[str] = []

    async def fetch() -> pd.DataFrame:
        http = build_client(timeout_s=FAST_TIMEOUT_S)

        async def record(request) -> None:
            urls.append(unquote(str(request.url)))

        http.event_hooks["request"].append(record)
        client = module.create(clean_sandbox.settings(), client=http)
        try:
            return await client.option_chain("SPX", SANDBOX_AS_OF)
        finally:
            await http.aclose()

    frame = asyncio.run(fetch())
    assert any(spelled in url for url in urls), urls
    assert set(frame["symbol"]) == {"SPX"}
    assert len(frame) > 50
    if module is schwab:  # the one whose wire carries every field the market has
        assert_chain_matches(frame, market.option_chain("SPX", SANDBOX_AS_OF), provider="schwab")


def test_polygon_spx_bars_and_closing_chain_over_the_sandbox(clean_sandbox):
    """Aggregates take `I:SPX` too; the reference endpoint behind a past closing chain (the IV
    bootstrap's) takes the bare root, as the sandbox requires of each."""

    async def fetch() -> tuple[pd.DataFrame, pd.DataFrame]:
        client = polygon.create(clean_sandbox.settings())
        end = SANDBOX_AS_OF.replace(hour=0)
        bars = await client.bars("SPX", "1d", end - timedelta(days=10), end)
        closing = await client.session_close_chain("SPX", date(2026, 3, 10))
        return bars, closing

    bars, closing = asyncio.run(fetch())
    assert not bars.empty and set(bars["symbol"]) == {"SPX"}
    assert not closing.empty and set(closing["symbol"]) == {"SPX"}


def _contract(root: str, strike: float) -> dict[str, object]:
    return {
        "optionRoot": root,
        "strikePrice": strike,
        "bid": 41.2,
        "ask": 41.9,
        "last": 41.5,
        "mark": 41.55,
        "totalVolume": 120,
        "openInterest": 3400,
        "volatility": 14.2,
        "delta": 0.51,
        "gamma": 0.002,
        "theta": -2.1,
        "vega": 6.3,
        "daysToExpiration": 14,
        "quoteTimeInLong": 1_796_000_000_000,
    }


def test_spx_and_spxw_contracts_on_one_strike_are_both_kept():
    """A real `$SPX` chain lists the AM-settled SPX monthly and the PM-settled SPXW weekly on
    the same day and strike; each keeps its own OCC root instead of colliding on one key."""
    payload = {
        "symbol": "$SPX",
        "underlyingPrice": 6010.0,
        "callExpDateMap": {
            "2026-12-18:14": {"6000.0": [_contract("SPX", 6000.0), _contract("SPXW", 6000.0)]}
        },
        "putExpDateMap": {},
    }
    frame = schwab.parse_chain(payload, "SPX")
    assert sorted(frame["occ_symbol"]) == ["SPX   261218C06000000", "SPXW  261218C06000000"]
    assert set(frame["symbol"]) == {"SPX"}
    validated = validate_chain(frame, datetime(2026, 12, 4, 15, 0, tzinfo=UTC))
    assert len(validated.frame) == 2
    with pytest.raises(ProviderError, match="echoes no valid symbol"):
        schwab.parse_chain({**payload, "symbol": "$AAPL"}, "AAPL")
