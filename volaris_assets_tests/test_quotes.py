"""Real-time quotes: batch clients against the sandbox, the `quotes` asset, alerts on quotes.

Everything here is real HTTP over loopback (the providers' quote endpoints in the sandbox, the
webhook receiver standing in for Discord) and real materializations; the alert latency test
runs the quote schedule's tick, the job it requests and the alert sensor's tick in turn.
"""

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from volaris_assets.alerts.rules import MINUTE_BAR, QUOTE, Price, add_price_alert, latest_prices
from volaris_assets.alerts.sensors import ALERT_INTERVAL_S, price_alerts_sensor
from volaris_assets.definitions import defs
from volaris_assets.ingest.validation import validate_quotes
from volaris_assets.providers import alpaca, polygon, schwab
from volaris_assets.quotes.assets import quotes, rejections, write_batch
from volaris_assets.quotes.checks import quotes_cover_universe
from volaris_assets.quotes.definitions import quotes_job, schedules
from volaris_assets.settings import Settings
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import embeds, notifier_for
from volaris_assets_tests.pipeline_support import metadata, resources, sandbox_market
from volaris_assets_tests.sandbox_fixtures import SANDBOX_AS_OF
from volaris_assets_tests.webhook_receiver import WebhookReceiver

CLIENTS = {"schwab": schwab, "polygon": polygon, "alpaca": alpaca}
QUOTE_PATHS = {
    "schwab": "/marketdata/v1/quotes",
    "polygon": "/v2/snapshot/locale/us/markets/stocks/tickers",
    "alpaca": "/v2/stocks/snapshots",
}
# Not in the S&P 500: with its 503 members, the 520 symbols of the bar.
ETFS = "SPY QQQ IWM DIA XLK XLF XLE XLV XLY XLP XLI XLU XLB XLRE XLC GLD TLT".split()
# A bar of the issue: 520 symbols in at most this many requests from a batch provider.
MAX_REQUESTS_FOR_520 = 10
# The bar: a price cross reaches Discord within this many seconds.
ALERT_BAR_S = 90.0


@pytest.fixture(scope="module")
def symbols_520(sandbox) -> list[str]:
    """The S&P 500 and the ETFs above, with the sandbox's market warmed for them: a symbol's
    first quote builds its whole simulated price path (~10 ms), and a first render of 250 of
    them would outlast the 2 s after which the Schwab client hedges a request (a real Schwab
    answers in well under a second)."""
    from volaris_assets.universe.constituents import SP500, index_members

    symbols = [m.symbol for m in index_members((SP500,)).members] + ETFS
    for symbol in symbols:
        sandbox.market.simulated.quote(symbol, SANDBOX_AS_OF)
    return symbols


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def warehouse(warehouse_url):
    opened = Warehouse(warehouse_url)
    opened.create_tables()
    yield opened
    opened.dispose()


def quote_resources(
    url: str, sandbox, providers: str = "schwab", **tuning: object
) -> dict[str, object]:
    """The project's resources with the intraday (and so quote) providers on the sandbox."""
    return resources(url, **sandbox_market(sandbox.settings(), providers, **tuning))


async def fetch_quotes(provider: str, settings: dict[str, str], symbols: list[str]):
    client = CLIENTS[provider].create(settings)
    try:
        return await client.quotes(symbols, SANDBOX_AS_OF)
    finally:
        await client.aclose()


@pytest.mark.parametrize("provider", sorted(CLIENTS))
def test_batch_quotes_match_the_market(clean_sandbox, market, provider):
    got = asyncio.run(
        fetch_quotes(provider, clean_sandbox.settings(), ["AAPL", "BRK.B", "ZZZZ", "SPY"])
    )
    assert list(got["symbol"]) == ["AAPL", "BRK.B", "SPY"]  # the unlisted ZZZZ is absent
    assert set(got["provider"]) == {provider}
    for row in got.itertuples():
        expected = market.quote(row.symbol, SANDBOX_AS_OF)
        np.testing.assert_allclose(
            [row.last, row.bid, row.ask, row.volume, row.prev_close],
            [expected.last, expected.bid, expected.ask, expected.volume, expected.prev_close],
        )
        assert row.quote_ts == pd.Timestamp(SANDBOX_AS_OF)
    assert clean_sandbox.stats.count(provider, QUOTE_PATHS[provider]) == 1


# Where each provider quotes an index: Schwab in the same call ($SPX), Polygon in its indices
# snapshot (I:SPX), beside the stocks snapshot, which knows no index.
INDEX_QUOTE_PATHS = {"schwab": QUOTE_PATHS["schwab"], "polygon": "/v3/snapshot/indices"}


@pytest.mark.parametrize("provider", sorted(INDEX_QUOTE_PATHS))
def test_index_quotes_have_a_value_and_no_bid_or_ask(clean_sandbox, market, provider):
    got = asyncio.run(
        fetch_quotes(provider, clean_sandbox.settings(), ["SPX", "AAPL", "NDX", "XSP"])
    )
    assert sorted(got["symbol"]) == ["AAPL", "NDX", "SPX", "XSP"]
    for row in got.itertuples():
        expected = market.quote(row.symbol, SANDBOX_AS_OF)
        assert row.last == pytest.approx(expected.last)
        assert row.prev_close == pytest.approx(expected.prev_close)
        assert row.quote_ts == pd.Timestamp(SANDBOX_AS_OF)
    indices = got[got["symbol"] != "AAPL"]
    if provider == "polygon":  # its snapshot has no quote for an index, Schwab's has
        assert indices[["bid", "ask", "volume"]].isna().all().all()
    assert clean_sandbox.stats.count(provider, INDEX_QUOTE_PATHS[provider]) == 1
    assert clean_sandbox.stats.count(provider, QUOTE_PATHS[provider]) == 1  # AAPL's


@pytest.mark.parametrize("provider", ["polygon", "alpaca"])
def test_520_symbols_in_a_few_requests_from_each_batch_provider(
    clean_sandbox, symbols_520, provider
):
    symbols = symbols_520
    module = CLIENTS[provider]
    batches = [symbols[i : i + module.QUOTE_BATCH] for i in range(0, 520, module.QUOTE_BATCH)]
    frames = [asyncio.run(fetch_quotes(provider, clean_sandbox.settings(), b)) for b in batches]
    assert len(symbols) == 520 and sum(len(f) for f in frames) == 520
    assert clean_sandbox.stats.count(provider, QUOTE_PATHS[provider]) <= MAX_REQUESTS_FOR_520


def test_the_quotes_asset_takes_520_symbols_in_three_requests(
    warehouse, warehouse_url, clean_sandbox, symbols_520, market, instance
):
    res = quote_resources(warehouse_url, clean_sandbox)
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    for symbol in ETFS:  # symbols with an active alert are quoted too
        add_price_alert(warehouse, symbol, "above", 10_000)

    result = dg.materialize([quotes, quotes_cover_universe], resources=res, instance=instance)

    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["missing"].value == 0
    meta = metadata(result, "quotes")
    requests = clean_sandbox.stats.count("schwab", QUOTE_PATHS["schwab"])
    assert requests == 3 == meta["requests"] <= MAX_REQUESTS_FOR_520
    assert meta["symbols_requested"] == meta["symbols_quoted"] == 520
    assert meta["rows_rejected"] == 0 and meta["providers"] == {"schwab": 3}
    # Inside the shared budget: each of them (and the token refresh) took a turn of it.
    [budget] = meta["provider_budget"]
    assert budget["provider"] == "schwab" and budget["reserved_last_60s"] >= requests + 1
    stored = warehouse.read_frame("SELECT * FROM quotes").set_index("symbol")
    assert len(stored) == 520
    for symbol in ("SPY", "AAPL", "BRK.B"):
        assert stored.loc[symbol, "last"] == market.quote(symbol, SANDBOX_AS_OF).last
        assert stored.loc[symbol, "provider"] == "schwab"
    tape = warehouse.read_frame("SELECT symbol, minute FROM quote_history")
    assert len(tape) == 520
    assert set(pd.to_datetime(tape["minute"], utc=True)) == {pd.Timestamp(SANDBOX_AS_OF)}


def test_bad_quote_rows_are_counted_and_recorded(
    warehouse, warehouse_url, clean_sandbox, small_universe, instance, caplog
):
    # Every row is corrupted: most are refused, which must not fail the run here.
    res = quote_resources(warehouse_url, clean_sandbox, min_success_rate=0.0)
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    add_price_alert(warehouse, "ZZZZ", "below", 5)  # unknown to the provider: not returned
    clean_sandbox.set_faults({"malformed": 1.0, "row_fraction": 1.0})

    with caplog.at_level(logging.DEBUG):
        result = dg.materialize([quotes, quotes_cover_universe], resources=res, instance=instance)

    [check] = result.get_asset_check_evaluations()
    assert not check.passed  # the refused symbols have no quote
    meta = metadata(result, "quotes")
    requested = {*small_universe, "ZZZZ"}
    stored = warehouse.read_frame("SELECT symbol FROM quotes")
    rejected = warehouse.read_frame(
        "SELECT symbol, reason, count, example FROM row_rejections WHERE asset = 'quotes'"
    )
    # Every symbol is either quoted or rejected with a reason, never both, never neither.
    assert set(stored["symbol"]) | set(rejected["symbol"]) == requested
    assert not set(stored["symbol"]) & set(rejected["symbol"])
    assert meta["rows_rejected"] == rejected["count"].sum() == len(rejected) >= 2
    assert meta["symbols_quoted"] == len(stored) == len(requested) - len(rejected)
    assert ("ZZZZ", "not_returned") in set(zip(rejected["symbol"], rejected["reason"], strict=True))
    assert meta["rejections_by_reason"] == rejected["reason"].value_counts().to_dict()
    # Secrets: the sandbox's keys and the access tokens it issued appear nowhere.
    secrets = [*clean_sandbox.keys["schwab"].values(), *clean_sandbox.state["schwab"].issued]
    written = " ".join(
        [caplog.text, json.dumps(meta, default=str), rejected.to_json(), str(result.all_events)]
    )
    assert secrets and not [s for s in secrets if s in written]


def test_quote_validation_reasons():
    frame = pd.DataFrame(
        {
            "symbol": ["AAPL", "MSFT", "KO", "XOM", "NVDA", "EVIL", "AAPL", "SPX"],
            "last": [10.0, np.nan, 0.0, 5.0, 7.0, 1.0, 11.0, 5000.0],
            "bid": [9.9, 1.0, 1.0, 5.1, 6.9, 1.0, 10.9, np.nan],
            "ask": [10.1, 1.1, 1.1, 5.0, 7.1, 1.1, 11.1, np.nan],
            "volume": [100, 1, 1, 1, 12.5, 1, 100, np.nan],
            "prev_close": 1.0,
            "quote_ts": pd.Timestamp(SANDBOX_AS_OF),
            "provider": "test",
        }
    )
    requested = ["AAPL", "MSFT", "KO", "XOM", "NVDA", "SPX"]
    validated = validate_quotes(frame, requested)
    assert dict(validated.rejected) == {
        "not_requested": 1,
        "missing_field": 1,
        "nonpositive_price": 1,
        "crossed_quote": 1,
        "bad_volume": 1,
        "duplicate_key": 1,
    }
    # An index has no bid, ask or volume: still a quote.
    assert list(validated.frame["symbol"]) == ["AAPL", "SPX"]
    assert validated.frame["last"].tolist() == [11.0, 5000.0]


def test_a_batch_with_duplicates_and_junk_keys_is_written_with_its_rejections(warehouse):
    answer = pd.DataFrame(
        {
            "symbol": ["AAPL", "AAPL", "AAPL", "MSFT", "X" * 20, "Y" * 20],
            "last": [1.0, 2.0, 3.0, -1.0, 5.0, 5.0],
            "bid": np.nan,
            "ask": np.nan,
            "volume": 10,
            "prev_close": 1.0,
            "quote_ts": pd.Timestamp(SANDBOX_AS_OF),
            "provider": "schwab",
        }
    ).assign(row=range(6))
    batch = ["AAPL", "MSFT", "KO"]
    kept = validate_quotes(answer, batch).frame
    refused = rejections(answer, kept, batch)
    warehouse.run_transaction(
        lambda conn: write_batch(conn, warehouse, ("run-1", "quotes"), kept, refused)
    )
    stored = warehouse.read_frame("SELECT symbol, last FROM quotes")
    assert stored.to_dict("records") == [{"symbol": "AAPL", "last": 3.0}]
    recorded = warehouse.read_frame("SELECT symbol, reason, count FROM row_rejections")
    assert sorted(map(tuple, recorded.to_numpy().tolist())) == [
        ("-", "not_requested", 2),
        ("AAPL", "duplicate_key", 2),
        ("KO", "not_returned", 1),
        ("MSFT", "nonpositive_price", 1),
    ]


def test_alerts_read_the_newer_of_the_quote_and_the_last_minute_bar(warehouse):
    bar_start = SANDBOX_AS_OF  # its close is the price at 15:01
    bar = {"symbol": "KO", "timeframe": "1m", "ts": bar_start, "open": 60.0, "high": 60.0}
    bar |= {"low": 60.0, "close": 60.0, "volume": 1, "provider": "test"}

    def quote(seconds: int, last: float) -> None:
        row = {"symbol": "KO", "last": last, "provider": "test", "updated_at": SANDBOX_AS_OF}
        row["quote_ts"] = bar_start + timedelta(seconds=seconds)
        with warehouse.transaction() as conn:
            warehouse.upsert(conn, "quotes", [row])

    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "price_bars", [bar])
    quote(30, 61.0)  # older than the bar's close
    assert latest_prices(warehouse, ["KO"])["KO"] == Price(bar_start, 60.0, MINUTE_BAR)
    quote(60, 62.0)
    assert latest_prices(warehouse, ["KO"])["KO"] == Price(
        bar_start + timedelta(seconds=60), 62.0, QUOTE
    )


def test_the_quote_schedule_runs_in_market_hours_only(instance):
    [schedule] = schedules(Settings())
    open_tick = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)  # 11:00 ET, a Wednesday

    def evaluate(tick: datetime) -> dg.RunRequest | dg.SkipReason:
        return schedule(dg.build_schedule_context(instance=instance, scheduled_execution_time=tick))

    request = evaluate(open_tick)
    assert isinstance(request, dg.RunRequest) and request.partition_key is None
    assert request.run_key == "quotes_schedule:2026-03-11T15:00"
    for closed in (open_tick.replace(hour=13), datetime(2026, 11, 26, 15, tzinfo=UTC)):
        assert isinstance(evaluate(closed), dg.SkipReason)  # before the open; Thanksgiving


def test_the_quote_schedule_skips_a_tick_while_its_previous_run_is_in_flight():
    [schedule] = schedules(Settings())
    tick = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
    job = defs.resolve_job_def(quotes_job.name)
    with dg.instance_for_test() as instance:
        launched = {"dagster/schedule_name": "quotes_schedule"}
        run = instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED, tags=launched)
        instance.create_run_for_job(job, status=dg.DagsterRunStatus.STARTED)  # e.g. by hand

        def evaluate() -> dg.RunRequest | dg.SkipReason:
            context = dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
            return schedule(context)

        skipped = evaluate()
        assert isinstance(skipped, dg.SkipReason) and run.run_id in skipped.skip_message
        instance.report_run_failed(run)  # finished: the next tick refreshes
        assert isinstance(evaluate(), dg.RunRequest)


def crossing(market, symbol: str) -> tuple[datetime, str, float]:
    """A minute after SANDBOX_AS_OF at which `symbol`'s last price has moved, and a rule
    (direction, threshold) that the move crosses."""
    before = market.quote(symbol, SANDBOX_AS_OF).last
    for minutes in range(1, 60):
        moved_at = SANDBOX_AS_OF + timedelta(minutes=minutes)
        after = market.quote(symbol, moved_at).last
        if abs(after - before) > 0.02:
            return moved_at, "above" if after > before else "below", (before + after) / 2
    raise AssertionError(f"{symbol} did not move for an hour")


def test_a_price_cross_reaches_discord_within_90_s(
    warehouse,
    warehouse_url,
    clean_sandbox,
    market,
    instance,
    receiver,
    tmp_path,
    record_property,
):
    res = {
        **quote_resources(warehouse_url, clean_sandbox),
        "notifier": notifier_for(receiver, tmp_path),
    }
    location = dg.Definitions(assets=[quotes], jobs=[quotes_job], resources=res)
    [schedule] = schedules(Settings())
    moved_at, direction, threshold = crossing(market, "AAPL")
    # No universe loaded: the alert alone puts AAPL among the symbols quoted.
    alert = add_price_alert(warehouse, "AAPL", direction, threshold)

    def tick_alerts() -> None:
        with dg.build_sensor_context(instance=instance, resources=res) as context:
            price_alerts_sensor.evaluate_tick(context)

    def scheduled_refresh(tick: datetime) -> None:
        request = schedule(
            dg.build_schedule_context(instance=instance, scheduled_execution_time=tick)
        )
        assert isinstance(request, dg.RunRequest)
        job = location.resolve_job_def(quotes_job.name)
        assert job.execute_in_process(instance=instance, tags=request.tags).success

    try:
        scheduled_refresh(SANDBOX_AS_OF)
        tick_alerts()
        assert embeds(receiver) == []  # not crossed yet

        clean_sandbox.set_as_of(moved_at)  # the market moves across the threshold
        injected = time.monotonic()
        scheduled_refresh(moved_at)
        tick_alerts()
        latency_s = time.monotonic() - injected
    finally:
        clean_sandbox.set_as_of(SANDBOX_AS_OF)

    [embed] = embeds(receiver)
    assert embed["title"] == f"Price alert: AAPL {direction} {threshold:g}"
    assert f"rule #{alert} (one-shot)" in embed["description"]
    assert "(quote 2026-03-11 " in embed["description"]
    record_property("alert_latency_s", round(latency_s, 3))
    # Deployed, a cross waits at most one quote interval for the next refresh and one sensor
    # interval for the next evaluation, on top of what was measured here.
    worst_case_s = Settings().realtime_interval_s + ALERT_INTERVAL_S + latency_s
    assert worst_case_s <= ALERT_BAR_S, f"alert_latency_s {latency_s:.1f}, worst {worst_case_s:.1f}"
