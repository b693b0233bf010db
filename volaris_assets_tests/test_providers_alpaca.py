"""Contract tests: the Alpaca client against the sandbox's Alpaca wire format over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from volaris_assets.providers import alpaca
from volaris_assets.providers.http import build_client
from volaris_assets_tests.sandbox_fixtures import (
    FAST_TIMEOUT_S,
    SANDBOX_AS_OF,
    SANDBOX_PAGE_SIZES,
    assert_bars_match,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
START = SANDBOX_AS_OF - timedelta(days=2)


async def _with_client(sandbox, action, **overrides):
    settings = {**sandbox.settings(), **overrides}
    client = alpaca.create(settings, client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


def test_minute_bars_span_pages_and_match_the_market(clean_sandbox, market):
    async def action(client):
        return await client.bars("XOM", "1m", START, SANDBOX_AS_OF), client.pages_fetched

    frame, pages = asyncio.run(_with_client(clean_sandbox, action))
    expected = market.bars("XOM", "1m", START, SANDBOX_AS_OF)
    assert pages == -(-len(expected) // SANDBOX_PAGE_SIZES["alpaca"]) > 1
    assert_bars_match(frame, expected, provider="alpaca")


@pytest.mark.parametrize("timeframe", ["5m", "1d"])
def test_other_timeframes_match_the_market(clean_sandbox, market, timeframe):
    start = SANDBOX_AS_OF - timedelta(days=30 if timeframe == "1d" else 2)
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("XOM", timeframe, start, SANDBOX_AS_OF))
    )
    assert_bars_match(frame, market.bars("XOM", timeframe, start, SANDBOX_AS_OF), provider="alpaca")


def test_null_bars_are_an_empty_frame(clean_sandbox):
    saturday = SANDBOX_AS_OF - timedelta(days=4)  # 2026-03-07
    frame = asyncio.run(
        _with_client(
            clean_sandbox, lambda c: c.bars("XOM", "1m", saturday, saturday + timedelta(hours=12))
        )
    )
    assert frame.empty and list(frame.columns)[:3] == ["symbol", "timeframe", "ts"]


def test_wrong_secret_is_an_auth_error(clean_sandbox):
    result = asyncio.run(
        _with_client(
            clean_sandbox,
            lambda c: outcome(c.bars("XOM", "1d", START, SANDBOX_AS_OF)),
            ALPACA_API_SECRET="x",
        )
    )
    assert result == "auth"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", "rate_limited"),
        ("server_error", "server_error"),
        ("timeout", "timeout"),
        ("reset", "server_error"),
        ("truncated", "bad_data"),
        ("malformed", "ok"),
    ],
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    clean_sandbox.set_faults(faults(kind))
    result = asyncio.run(
        _with_client(clean_sandbox, lambda c: outcome(c.bars("XOM", "5m", START, SANDBOX_AS_OF)))
    )
    assert result == expected


def test_many_symbols_share_one_paginated_request_and_each_matches_the_market(
    clean_sandbox, market
):
    symbols = ["XOM", "AAPL", "NOPE", "MSFT"]  # NOPE is not listed: absent from the answer

    async def action(client):
        return await client.bars_many(symbols, "1m", START, SANDBOX_AS_OF), client.pages_fetched

    frame, pages = asyncio.run(_with_client(clean_sandbox, action))
    listed = [s for s in symbols if s != "NOPE"]
    expected = {s: market.bars(s, "1m", START, SANDBOX_AS_OF) for s in listed}
    total = sum(len(bars) for bars in expected.values())
    assert pages == -(-total // SANDBOX_PAGE_SIZES["alpaca"]) > len(listed)
    assert sorted(frame["symbol"].unique()) == sorted(listed)
    for symbol, bars in expected.items():
        mine = frame[frame["symbol"] == symbol].reset_index(drop=True)
        assert_bars_match(mine, bars, provider="alpaca")


def test_a_batch_is_parsed_a_symbol_at_a_time_with_the_loop_running_between(
    clean_sandbox, monkeypatch
):
    """The rest of a run (other requests, their timeouts, budget turns) gets the event loop
    between one symbol's parse and the next, not only after the whole batch's."""
    symbols = ["XOM", "AAPL", "MSFT", "KO"]
    ticks = 0
    seen_at_parse: list[int] = []
    parse_bars = alpaca.parse_bars

    def counting_parse(*args, **kwargs):
        seen_at_parse.append(ticks)
        return parse_bars(*args, **kwargs)

    monkeypatch.setattr(alpaca, "parse_bars", counting_parse)

    async def action(client):
        nonlocal ticks
        fetching = asyncio.create_task(client.bars_many(symbols, "1m", START, SANDBOX_AS_OF))
        while not fetching.done():
            ticks += 1
            await asyncio.sleep(0)
        return fetching.result()

    frame = asyncio.run(_with_client(clean_sandbox, action))
    assert sorted(frame["symbol"].unique()) == sorted(symbols)
    assert len(seen_at_parse) == len(symbols)
    assert seen_at_parse == sorted(set(seen_at_parse)), seen_at_parse  # strictly increasing


def test_a_batch_over_the_cap_is_refused_before_sending(clean_sandbox):
    symbols = [f"S{i}" for i in range(alpaca.BAR_BATCH + 1)]
    with pytest.raises(ValueError, match="at most"):
        asyncio.run(
            _with_client(clean_sandbox, lambda c: c.bars_many(symbols, "1m", START, SANDBOX_AS_OF))
        )


def test_an_index_is_never_asked_of_a_provider_that_serves_none(clean_sandbox):
    """Alpaca would read SPX as a stock ticker (the sandbox answers it as one): through a
    chain, the index alone is refused before anything is sent, and a batch goes without it."""
    from volaris_assets.providers.resilience import ChainExhausted, ResilienceRegistry

    async def action(client):
        chain = ResilienceRegistry().chain([client])
        try:
            await chain.bars("SPX", "1m", START, SANDBOX_AS_OF)
        except ChainExhausted as refused:
            alone = refused
        sent_alone = clean_sandbox.stats.count("alpaca")
        try:
            await chain.bars_many(["SPX", "VIX"], "1m", START, SANDBOX_AS_OF)
        except ChainExhausted as refused:
            indexes_only = refused
        sent_before_batch = clean_sandbox.stats.count("alpaca")
        batch = await chain.bars_many(["AAPL", "SPX"], "1m", START, SANDBOX_AS_OF)
        assert "alpaca=no_data (serves no index)" in str(indexes_only) and sent_before_batch == 0
        return alone, sent_alone, batch

    clean_sandbox.stats.reset()
    alone, sent_alone, batch = asyncio.run(_with_client(clean_sandbox, action))
    assert "alpaca=no_data (serves no index (SPX))" in str(alone) and sent_alone == 0
    assert set(batch.frame["symbol"]) == {"AAPL"} and batch.provider == "alpaca"
