"""Intraday bars through Alpaca's multi-symbol endpoint: real runs against the sandbox over
HTTP, on SQLite and PostgreSQL. The fan-out stays per symbol (an outcome row each) while the
requests go out in batches, and the requests the outcomes count are the ones the sandbox saw."""

from __future__ import annotations

import math
from datetime import timedelta

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from volaris_assets.prices.assets import intraday_bars
from volaris_assets.providers import alpaca
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources, sandbox_market
from volaris_assets_tests.sandbox_fixtures import SANDBOX_AS_OF, SANDBOX_PAGE_SIZES, faults

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

# 150 tickers the sandbox makes up, and one it answers as unknown (left out of a batch's answer).
LISTED = [f"{a}{b}{c}" for a in "ABCDEF" for b in "ABCDE" for c in "ABCDE"]
UNIVERSE = [*LISTED, "NOPE"]
SESSION = "2026-03-11"
MINUTES = 90  # SANDBOX_AS_OF is 15:00 UTC, 11:00 in New York (daylight time from March 8)
NEW_MINUTES = 5
BARS_PATH = "/v2/stocks/bars"


@pytest.fixture
def setup(warehouse_url, monkeypatch, clean_sandbox):
    monkeypatch.setenv("VOLARIS_UNIVERSE", ",".join(UNIVERSE))
    market = sandbox_market(
        clean_sandbox.settings(), "alpaca", min_success_rate=0.0, request_timeout_s=60.0
    )
    res = {
        **resources(warehouse_url),
        "intraday_data": MarketDataResource(capability="intraday", **market),
    }
    dg.materialize([sp500_constituents], resources=res)
    clean_sandbox.stats.reset()
    return res


def run_intraday(res) -> dg.ExecuteInProcessResult:
    with freeze_time(SANDBOX_AS_OF):
        return dg.materialize(
            [sp500_constituents, intraday_bars],
            selection=[intraday_bars],
            partition_key=SESSION,
            resources=res,
            raise_on_error=False,
        )


def outcomes(url: str, run_id: str):
    warehouse = Warehouse(url)
    try:
        return warehouse.read_frame(
            "SELECT symbol, status, error_type, provider, attempts FROM sync_stock_results "
            f"WHERE run_id = '{run_id}'"
        ).set_index("symbol")
    finally:
        warehouse.dispose()


def minute_bars(url: str) -> dict[str, int]:
    warehouse = Warehouse(url)
    try:
        frame = warehouse.read_frame(
            "SELECT symbol, COUNT(*) AS n FROM price_bars WHERE timeframe = '1m' GROUP BY symbol"
        )
    finally:
        warehouse.dispose()
    return dict(zip(frame["symbol"], frame["n"], strict=True))


def test_symbols_sharing_a_window_share_requests(setup, warehouse_url, clean_sandbox):
    assert run_intraday(setup).success  # the session so far, 90 minutes (paginated)
    clean_sandbox.stats.reset()
    clean_sandbox.set_as_of(SANDBOX_AS_OF + timedelta(minutes=NEW_MINUTES))
    try:
        result = run_intraday(setup)  # what a 5-minute schedule tick asks for
    finally:
        clean_sandbox.set_as_of(SANDBOX_AS_OF)
    assert result.success
    rows = outcomes(warehouse_url, result.run_id)
    assert set(rows.index) == set(UNIVERSE)
    listed = rows.loc[LISTED]
    assert set(listed["status"]) == {"ok"} and set(listed["provider"]) == {"alpaca"}
    assert rows.loc["NOPE", "status"] == "failed"  # asked alone after its batch left it out
    assert minute_bars(warehouse_url) == dict.fromkeys(LISTED, MINUTES + NEW_MINUTES)

    page = SANDBOX_PAGE_SIZES["alpaca"]
    cut = range(0, len(LISTED), alpaca.BAR_BATCH)
    pages = sum(math.ceil(len(LISTED[i : i + alpaca.BAR_BATCH]) * NEW_MINUTES / page) for i in cut)
    # NOPE has no stored minute, so its window starts at the open: a batch of its own that
    # comes back empty, then one request alone.
    assert clean_sandbox.stats.count("alpaca", BARS_PATH) == pages + 2 == 5
    # Requests as the run counts them: one per batch (its pages are follow-ups), once each.
    assert int(rows["attempts"].sum()) == len(cut) + 2


def test_a_failed_batch_fails_each_of_its_symbols_once(setup, warehouse_url, clean_sandbox):
    clean_sandbox.set_faults(faults("server_error"))
    result = run_intraday(setup)
    rows = outcomes(warehouse_url, result.run_id)
    assert set(rows.index) == set(UNIVERSE)
    assert set(rows["status"]) == {"failed"}
    # The second batch may find the circuit the first one opened.
    assert (rows["error_type"] == "server_error").sum() >= alpaca.BAR_BATCH
    assert set(rows["error_type"]) <= {"server_error", "circuit_open"}
    sent = clean_sandbox.stats.count("alpaca", BARS_PATH)
    assert int(rows["attempts"].sum()) == sent > 0
    # Two batches, each retried: not 151 symbols, each retried.
    assert sent <= 2 * setup["intraday_data"].retry_attempts
