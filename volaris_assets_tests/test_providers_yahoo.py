"""Contract tests: the Yahoo client against the sandbox's Yahoo wire format over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from volaris_assets.providers import yahoo
from volaris_assets.providers.http import build_client
from volaris_assets_tests.sandbox_fixtures import (
    FAST_TIMEOUT_S,
    NEAR_PUTS,
    SANDBOX_AS_OF,
    assert_bars_match,
    assert_chain_matches,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
OPTIONS = "/v7/finance/options/AAPL"


async def _with_client(sandbox, action):
    client = yahoo.create(sandbox.settings(), client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


def test_chain_is_one_request_per_expiration_and_matches_the_market(clean_sandbox, market):
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.option_chain("AAPL", SANDBOX_AS_OF))
    )
    expected = market.option_chain("AAPL", SANDBOX_AS_OF)
    assert_chain_matches(frame, expected, provider="yahoo", iv_tol=1e-6, greek_tol=None, mark=False)
    assert frame[["delta", "gamma", "theta", "vega"]].isna().all(axis=None)  # Yahoo has none
    assert clean_sandbox.stats.count("yahoo", OPTIONS, 200) == expected["expiration"].nunique()
    assert clean_sandbox.stats.count("yahoo", "/v1/test/getcrumb") == 1


def test_a_chain_filter_asks_only_for_the_expirations_in_range(clean_sandbox, market):
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.option_chain("AAPL", SANDBOX_AS_OF, NEAR_PUTS))
    )
    whole = market.option_chain("AAPL", SANDBOX_AS_OF)
    expected = NEAR_PUTS.apply(whole)
    in_range = expected["expiration"].nunique()
    # The first call (no date) lists the expirations and carries the nearest, out of range here.
    assert clean_sandbox.stats.count("yahoo", OPTIONS, 200) == 1 + in_range
    assert whole["expiration"].nunique() > 1 + in_range
    assert_chain_matches(
        NEAR_PUTS.apply(frame), expected, provider="yahoo", iv_tol=1e-6, greek_tol=None, mark=False
    )


def test_class_shares_use_the_hyphen_spelling(clean_sandbox, market):
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.option_chain("BRK.B", SANDBOX_AS_OF))
    )
    assert set(frame["symbol"]) == {"BRK.B"}
    assert clean_sandbox.stats.count("yahoo", "/v7/finance/options/BRK-B") > 0


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1d"])
def test_chart_bars_match_the_simulated_market(clean_sandbox, market, timeframe):
    days = 30 if timeframe == "1d" else 2
    start, end = SANDBOX_AS_OF - timedelta(days=days), SANDBOX_AS_OF
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("META", timeframe, start, end))
    )
    assert_bars_match(frame, market.bars("META", timeframe, start, end), provider="yahoo")


def test_a_rejected_crumb_is_fetched_again_once(clean_sandbox):
    async def action(client):
        await client.option_chain("AAPL", SANDBOX_AS_OF)
        clean_sandbox.reset()  # forgets every cookie: the crumb in hand is now invalid
        return await client.option_chain("AAPL", SANDBOX_AS_OF)

    frame = asyncio.run(_with_client(clean_sandbox, action))
    assert len(frame) > 0
    assert clean_sandbox.stats.count("yahoo", OPTIONS, 401) == 1
    assert clean_sandbox.stats.count("yahoo", "/v1/test/getcrumb") == 1


def test_unknown_symbols_are_not_found(clean_sandbox):
    async def action(client):
        chain = await outcome(client.option_chain("ZZZZ", SANDBOX_AS_OF))
        bars = await outcome(
            client.bars("ZZZZ", "1d", SANDBOX_AS_OF - timedelta(days=5), SANDBOX_AS_OF)
        )
        return chain, bars

    assert asyncio.run(_with_client(clean_sandbox, action)) == ("not_found", "not_found")


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", "rate_limited"),
        ("server_error", "server_error"),
        ("timeout", "timeout"),
        ("reset", "server_error"),
        ("truncated", "bad_data"),
        ("expired_token", "auth"),
        ("empty_chain", "no_data"),
        ("malformed", "ok"),
        ("crossed", "ok"),
    ],
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    async def action(client):
        await client._get_crumb()  # the faults under test are the options endpoint's
        clean_sandbox.set_faults(faults(kind))
        return await outcome(client.option_chain("AAPL", SANDBOX_AS_OF))

    assert asyncio.run(_with_client(clean_sandbox, action)) == expected


def test_malformed_chart_values_become_nan(clean_sandbox):
    clean_sandbox.set_faults(faults("malformed"))
    start = SANDBOX_AS_OF - timedelta(days=1)
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("META", "5m", start, SANDBOX_AS_OF))
    )
    assert 0 < frame["close"].isna().sum() < len(frame)
