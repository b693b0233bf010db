"""Contract tests: the Polygon client against the sandbox's Polygon wire format over HTTP."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pandas as pd
import pytest

from volaris_assets.providers import polygon
from volaris_assets.providers.base import ProviderError
from volaris_assets.providers.http import build_client
from volaris_assets_tests.sandbox_fixtures import (
    CHAIN_FAULT_OUTCOMES,
    FAST_TIMEOUT_S,
    NEAR_PUTS,
    SANDBOX_AS_OF,
    SANDBOX_PAGE_SIZES,
    assert_bars_match,
    assert_chain_matches,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)


async def _with_client(sandbox, action, **overrides):
    client = polygon.create(
        {**sandbox.settings(), **overrides}, client=build_client(timeout_s=FAST_TIMEOUT_S)
    )
    try:
        return await action(client)
    finally:
        await client.http.aclose()


def test_snapshot_follows_next_url_across_pages_and_matches_the_market(clean_sandbox, market):
    async def action(client):
        return await client.option_chain("NVDA", SANDBOX_AS_OF), client.pages_fetched

    frame, pages = asyncio.run(_with_client(clean_sandbox, action))
    expected = market.option_chain("NVDA", SANDBOX_AS_OF)
    assert pages == -(-len(expected) // SANDBOX_PAGE_SIZES["polygon"]) > 1
    assert_chain_matches(frame, expected, provider="polygon", iv_tol=1e-6, greek_tol=1e-6)


def test_a_chain_filter_is_sent_as_contract_type_and_expiration_bounds(clean_sandbox, market):
    async def action(client):
        return await client.option_chain("NVDA", SANDBOX_AS_OF, NEAR_PUTS), client.pages_fetched

    frame, pages = asyncio.run(_with_client(clean_sandbox, action))
    expected = NEAR_PUTS.apply(market.option_chain("NVDA", SANDBOX_AS_OF))
    assert pages == -(-len(expected) // SANDBOX_PAGE_SIZES["polygon"])
    assert_chain_matches(frame, expected, provider="polygon", iv_tol=1e-6, greek_tol=1e-6)


def test_the_key_travels_in_a_header_never_in_a_url(clean_sandbox):
    asyncio.run(_with_client(clean_sandbox, lambda c: c.option_chain("NVDA", SANDBOX_AS_OF)))
    key = clean_sandbox.keys["polygon"]["api_key"]
    assert all(key not in path for (_, path, _) in clean_sandbox.stats.requests)


def test_a_next_url_to_another_host_is_refused(clean_sandbox):
    from volaris_assets.providers.http import same_origin

    assert same_origin(
        f"{clean_sandbox.url('polygon')}/v3/x?cursor=1", clean_sandbox.url("polygon")
    )
    assert not same_origin("https://evil.example/v3/x", clean_sandbox.url("polygon"))


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1d"])
def test_aggregates_match_the_simulated_market(clean_sandbox, market, timeframe):
    days = 30 if timeframe == "1d" else 2
    start, end = SANDBOX_AS_OF - timedelta(days=days), SANDBOX_AS_OF
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.bars("AMZN", timeframe, start, end))
    )
    assert_bars_match(frame, market.bars("AMZN", timeframe, start, end), provider="polygon")


def test_unknown_key_is_an_auth_error(clean_sandbox):
    result = asyncio.run(
        _with_client(
            clean_sandbox,
            lambda c: outcome(c.option_chain("AAPL", SANDBOX_AS_OF)),
            POLYGON_API_KEY="wrong",
        )
    )
    assert result == "auth"


def test_unlisted_underlying_is_no_data(clean_sandbox):
    result = asyncio.run(
        _with_client(clean_sandbox, lambda c: outcome(c.option_chain("ZZZZ", SANDBOX_AS_OF)))
    )
    assert result == "no_data"


def test_rate_limit_carries_retry_after(clean_sandbox):
    from volaris_assets.sandbox.server import RateLimit

    clean_sandbox.set_rate_limit("polygon", RateLimit(requests=1, per_s=30))

    async def action(client):
        await client.bars("AAPL", "1d", SANDBOX_AS_OF - timedelta(days=5), SANDBOX_AS_OF)
        with pytest.raises(ProviderError) as caught:
            await client.bars("AAPL", "1d", SANDBOX_AS_OF - timedelta(days=5), SANDBOX_AS_OF)
        return caught.value

    error = asyncio.run(_with_client(clean_sandbox, action))
    assert error.category == "rate_limited" and 29 <= error.retry_after <= 30


@pytest.mark.parametrize(
    ("kind", "expected"),
    [("rate_limit", "rate_limited"), *CHAIN_FAULT_OUTCOMES],
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    clean_sandbox.set_faults(faults(kind))
    result = asyncio.run(
        _with_client(clean_sandbox, lambda c: outcome(c.option_chain("AAPL", SANDBOX_AS_OF)))
    )
    assert result == expected


def test_missing_greeks_are_nan_not_zero(clean_sandbox):
    clean_sandbox.set_faults(faults("bad_greeks"))
    frame = asyncio.run(
        _with_client(clean_sandbox, lambda c: c.option_chain("AAPL", SANDBOX_AS_OF))
    )
    missing = frame["delta"].isna()
    assert 0 < missing.sum() < len(frame)
    assert (
        frame.loc[missing, ["gamma", "theta", "vega", "implied_volatility"]].isna().all(axis=None)
    )


def test_days_to_expiry_counts_dates_across_a_daylight_saving_change():
    """2026-03-05 to 2026-03-20 is 15 days, though 2026-03-08 has 23 hours: subtracting
    New York midnights gave 14 days 23 hours, which `.days` floored to 14."""
    contract = {
        "details": {
            "contract_type": "put",
            "expiration_date": "2026-03-20",
            "strike_price": 150,
            "ticker": "O:AAPL260320P00150000",
        },
        "last_quote": {"bid": 1.0, "ask": 1.1, "last_updated": 1772722800000000000},
        "underlying_asset": {"ticker": "AAPL", "price": 160.0},
    }
    chain = polygon.parse_snapshot([contract], "AAPL")
    assert chain["quote_ts"].iloc[0] == pd.Timestamp("2026-03-05T15:00:00Z")
    assert chain["dte"].tolist() == [15]
