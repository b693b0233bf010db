"""Sectors from a live profile provider: Finnhub's `/stock/profile2` over the sandbox sets each
stock's sub-industry (its `finnhubIndustry`) and GICS sector; ETFs are not asked; without a
provider nothing changes; a profile provider named badly or without its key is a settings error.
"""

import dagster as dg
import pandas as pd

from volaris_assets import settings
from volaris_assets.resources.market_data import ProfileDataResource
from volaris_assets.sandbox.wire.finnhub import industry
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.universe.constituents import UNCLASSIFIED, gics_sector
from volaris_assets.universe.profiles import company_profiles
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import metadata, resources, sandbox_market

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

STOCKS = ["AAPL", "KO", "MSFT", "XOM", "NVDA", "JPM"]


def _tickers(url: str) -> pd.DataFrame:
    warehouse = Warehouse(url)
    try:
        return warehouse.read_frame("SELECT * FROM tickers").set_index("symbol")
    finally:
        warehouse.dispose()


def _universe(url: str, instance, monkeypatch, profile_data: ProfileDataResource) -> dict:
    monkeypatch.setenv("VOLARIS_UNIVERSE", ",".join(STOCKS))
    monkeypatch.setenv("VOLARIS_UNIVERSE_EXTRA", "SPY")
    res = {**resources(url), "profile_data": profile_data}
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    warehouse = Warehouse(url)
    with warehouse.engine.begin() as conn:  # as the shipped ETF list labels it
        conn.exec_driver_sql("UPDATE tickers SET sector = 'ETF' WHERE symbol = 'SPY'")
    warehouse.dispose()
    return res


def test_finnhub_profiles_set_sector_and_industry(
    warehouse_url, instance, clean_sandbox, monkeypatch
):
    market = sandbox_market(clean_sandbox.settings(), "finnhub", rate_limits="finnhub=500/1")
    res = _universe(warehouse_url, instance, monkeypatch, ProfileDataResource(**market))

    result = dg.materialize([company_profiles], resources=res, instance=instance)
    assert result.success
    meta = metadata(result, "company_profiles")
    assert meta["symbols_total"] == meta["symbols_ok"] == len(STOCKS)
    assert meta["requests_by_provider"] == {"finnhub": len(STOCKS)}

    tickers = _tickers(warehouse_url)
    for symbol in STOCKS:
        label = industry(symbol)
        row = tickers.loc[symbol]
        assert row["sub_industry"] == label
        assert row["sector"] == gics_sector([label])  # Unclassified before, and if unknown
        assert row["name"] == f"{symbol} Sandbox Inc"
    assert tickers.loc["SPY", "sector"] == "ETF" and tickers.loc["SPY", "sub_industry"] == "S&P 500"
    assert {gics_sector([industry(s)]) for s in STOCKS} - {UNCLASSIFIED}, "no label classified"

    outcomes = Warehouse(warehouse_url).read_frame(
        "SELECT symbol, status, provider FROM sync_stock_results WHERE asset = 'company_profiles'"
    )
    assert sorted(outcomes["symbol"]) == sorted(STOCKS)
    assert set(outcomes["provider"]) == {"finnhub"}

    # A symbol outside the universe is a configuration error, not a silent skip.
    refused = dg.materialize(
        [company_profiles],
        resources=res,
        instance=instance,
        run_config={"ops": {"company_profiles": {"config": {"symbols": ["ZZZZ"]}}}},
        raise_on_error=False,
    )
    assert not refused.success
    failure = next(e for e in refused.all_events if e.is_step_failure)
    assert "ZZZZ" in failure.step_failure_data.error.message


def test_without_a_profile_provider_nothing_changes(sqlite_warehouse_url, instance, monkeypatch):
    res = _universe(sqlite_warehouse_url, instance, monkeypatch, ProfileDataResource())
    before = _tickers(sqlite_warehouse_url)
    result = dg.materialize([company_profiles], resources=res, instance=instance)
    assert result.success
    assert metadata(result, "company_profiles")["provider"] == "none"
    pd.testing.assert_frame_equal(_tickers(sqlite_warehouse_url), before)


def test_a_profile_provider_is_checked_like_the_others():
    (wrong,) = settings.problems({"VOLARIS_PROFILE_PROVIDERS": "simulated"})
    assert wrong.variable == "VOLARIS_PROFILE_PROVIDERS"
    assert "does not provide profile data" in wrong.reason
    (keyless,) = settings.problems({"VOLARIS_PROFILE_PROVIDERS": "finnhub"})
    assert "finnhub needs FINNHUB_API_KEY" in keyless.reason
    assert settings.load({}).providers("profile") == ""
    assert (
        settings.load({"VOLARIS_PROFILE_PROVIDERS": "finnhub", "FINNHUB_API_KEY": "k"}).providers(
            "profile"
        )
        == "finnhub"
    )
