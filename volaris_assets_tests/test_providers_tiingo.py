"""Contract tests: the Tiingo client against the sandbox's Tiingo wire format over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from volaris_assets.providers import tiingo
from volaris_assets.providers.http import build_client
from volaris_assets_tests.sandbox_fixtures import (
    FAST_TIMEOUT_S,
    SANDBOX_AS_OF,
    assert_bars_match,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
START = SANDBOX_AS_OF - timedelta(days=2)


async def _with_client(sandbox, action, **overrides):
    settings = {**sandbox.settings(), **overrides}
    client = tiingo.create(settings, client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1d"])
def test_bars_match_the_simulated_market(clean_sandbox, market, timeframe):
    start = SANDBOX_AS_OF - timedelta(days=30 if timeframe == "1d" else 2)
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("JPM", timeframe, start, SANDBOX_AS_OF))
    )
    assert_bars_match(frame, market.bars("JPM", timeframe, start, SANDBOX_AS_OF), provider="tiingo")


def test_class_shares_use_the_hyphen_spelling(clean_sandbox):
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("BRK.B", "1d", START, SANDBOX_AS_OF))
    )
    assert set(frame["symbol"]) == {"BRK.B"}
    assert clean_sandbox.stats.count("tiingo", "/tiingo/daily/BRK-B/prices", 200) == 1


def test_bad_token_and_unknown_ticker(clean_sandbox):
    bad = asyncio.run(
        _with_client(
            clean_sandbox,
            lambda c: outcome(c.bars("JPM", "1d", START, SANDBOX_AS_OF)),
            TIINGO_API_KEY="nope",
        )
    )
    unknown = asyncio.run(
        _with_client(clean_sandbox, lambda c: outcome(c.bars("ZZZZ", "1d", START, SANDBOX_AS_OF)))
    )
    assert (bad, unknown) == ("auth", "not_found")


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
        _with_client(clean_sandbox, lambda c: outcome(c.bars("JPM", "1m", START, SANDBOX_AS_OF)))
    )
    assert result == expected
