"""Contract tests: the Databento client against the sandbox's Databento wire format over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from volaris_assets.providers import databento
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
    client = databento.create(settings, client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1d"])
def test_bars_match_the_simulated_market(clean_sandbox, market, timeframe):
    start = SANDBOX_AS_OF - timedelta(days=30 if timeframe == "1d" else 2)
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("TSLA", timeframe, start, SANDBOX_AS_OF))
    )
    assert_bars_match(
        frame, market.bars("TSLA", timeframe, start, SANDBOX_AS_OF), provider="databento"
    )


def test_fixed_point_prices_are_scaled():
    records = databento.parse_lines(
        b'{"hd":{"ts_event":"1767364200000000000","rtype":33,"publisher_id":2,"instrument_id":38},'
        b'"open":"200000000000","high":"200400000000","low":"199900000000","close":"200200000000",'
        b'"volume":"15230","symbol":"AAPL"}\n'
    )
    frame = databento.parse_records(records, "AAPL", "1m")
    assert frame.loc[0, ["open", "high", "low", "close", "volume"]].tolist() == [
        200.0,
        200.4,
        199.9,
        200.2,
        15230.0,
    ]
    assert str(frame.loc[0, "ts"]) == "2026-01-02 14:30:00+00:00"


def test_bad_key_is_an_auth_error(clean_sandbox):
    result = asyncio.run(
        _with_client(
            clean_sandbox,
            lambda c: outcome(c.bars("TSLA", "1m", START, SANDBOX_AS_OF)),
            DATABENTO_API_KEY="x",
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
        _with_client(clean_sandbox, lambda c: outcome(c.bars("TSLA", "1m", START, SANDBOX_AS_OF)))
    )
    assert result == expected
