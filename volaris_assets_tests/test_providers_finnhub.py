"""Contract tests: the Finnhub client against the sandbox's Finnhub wire format over HTTP."""

from __future__ import annotations

import asyncio

import pytest

from volaris_assets.providers import finnhub
from volaris_assets.providers.base import CompanyProfile
from volaris_assets.providers.http import build_client
from volaris_assets.sandbox.wire.finnhub import industry
from volaris_assets_tests.sandbox_fixtures import FAST_TIMEOUT_S, SANDBOX_AS_OF, faults, outcome

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)


async def _with_client(sandbox, action, **overrides):
    settings = {**sandbox.settings(), **overrides}
    client = finnhub.create(settings, client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


def test_profile_maps_finnhub_industry_to_sector(clean_sandbox):
    profile = asyncio.run(_with_client(clean_sandbox, lambda c: c.profile("BRK.B")))
    assert profile == CompanyProfile("BRK.B", "BRK.B Sandbox Inc", industry("BRK.B"), None)


def test_quote_is_the_market_spot(clean_sandbox, market):
    quote = asyncio.run(_with_client(clean_sandbox, lambda c: c.quote("AAPL")))
    assert quote.price == pytest.approx(market.spot("AAPL", SANDBOX_AS_OF), abs=1e-4)
    assert quote.ts == SANDBOX_AS_OF


def test_soft_empties_are_no_data_and_bad_keys_auth(clean_sandbox):
    async def action(client):
        return await outcome(client.profile("ZZZZ")), await outcome(client.quote("ZZZZ"))

    assert asyncio.run(_with_client(clean_sandbox, action)) == ("no_data", "no_data")
    bad = asyncio.run(
        _with_client(clean_sandbox, lambda c: outcome(c.profile("AAPL")), FINNHUB_API_KEY="x")
    )
    assert bad == "auth"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("rate_limit", "rate_limited"),
        ("server_error", "server_error"),
        ("timeout", "timeout"),
        ("reset", "server_error"),
        ("truncated", "bad_data"),
    ],
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    clean_sandbox.set_faults(faults(kind))
    assert (
        asyncio.run(_with_client(clean_sandbox, lambda c: outcome(c.profile("AAPL")))) == expected
    )
