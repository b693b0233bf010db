"""Contract tests: the Schwab client against the sandbox's Schwab wire format over HTTP."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from volaris_assets.providers import schwab
from volaris_assets.providers.base import ProviderError
from volaris_assets.providers.http import build_client
from volaris_assets_tests.sandbox_fixtures import (
    CHAIN_FAULT_OUTCOMES,
    FAST_TIMEOUT_S,
    NEAR_PUTS,
    SANDBOX_AS_OF,
    assert_bars_match,
    assert_chain_matches,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

CHAINS = "/marketdata/v1/chains"
TOKEN = "/v1/oauth/token"


def run(coro):
    return asyncio.run(coro)


async def _with_client(sandbox, action, client=None, **overrides):
    settings = {**sandbox.settings(), **overrides}
    client = schwab.create(settings, client=client or build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


def test_chain_matches_the_simulated_market(clean_sandbox, market):
    frame = run(_with_client(clean_sandbox, lambda c: c.option_chain("AAPL", SANDBOX_AS_OF)))
    expected = market.option_chain("AAPL", SANDBOX_AS_OF)
    assert_chain_matches(frame, expected, provider="schwab")


def test_a_chain_filter_is_sent_as_contract_type_and_date_range(clean_sandbox, market):
    frame = run(
        _with_client(clean_sandbox, lambda c: c.option_chain("AAPL", SANDBOX_AS_OF, NEAR_PUTS))
    )
    whole = market.option_chain("AAPL", SANDBOX_AS_OF)
    expected = NEAR_PUTS.apply(whole)
    assert 0 < len(expected) < len(whole) / 4
    assert_chain_matches(frame, expected, provider="schwab")


def test_class_share_symbol_round_trips_through_schwab_spelling(clean_sandbox, market):
    frame = run(_with_client(clean_sandbox, lambda c: c.option_chain("BRK.B", SANDBOX_AS_OF)))
    assert set(frame["symbol"]) == {"BRK.B"}
    assert frame["occ_symbol"].str.startswith("BRKB  ").all()
    assert_chain_matches(frame, market.option_chain("BRK.B", SANDBOX_AS_OF), provider="schwab")


@pytest.mark.parametrize("timeframe", ["1m", "5m", "1d"])
def test_price_history_matches_the_simulated_market(clean_sandbox, market, timeframe):
    days = 20 if timeframe == "1d" else 2
    start, end = SANDBOX_AS_OF - timedelta(days=days), SANDBOX_AS_OF
    frame = run(_with_client(clean_sandbox, lambda c: c.bars("MSFT", timeframe, start, end)))
    assert_bars_match(frame, market.bars("MSFT", timeframe, start, end), provider="schwab")


def test_one_token_serves_many_requests(clean_sandbox):
    async def action(client):
        for symbol in ("AAPL", "MSFT", "NVDA"):
            await client.option_chain(symbol, SANDBOX_AS_OF)
        return client.token_refreshes

    assert run(_with_client(clean_sandbox, action)) == 1
    assert clean_sandbox.stats.count("schwab", TOKEN) == 1


def test_token_is_refreshed_before_it_expires(clean_sandbox):
    clean_sandbox.state["schwab"].lifetime_s = 1.0

    async def action(client):
        await client.option_chain("AAPL", SANDBOX_AS_OF)
        await client.option_chain("MSFT", SANDBOX_AS_OF)
        within_lifetime = client.token_refreshes
        await asyncio.sleep(1.0)
        await client.option_chain("AAPL", SANDBOX_AS_OF)
        return within_lifetime, client.token_refreshes

    assert run(_with_client(clean_sandbox, action)) == (1, 2)
    assert clean_sandbox.stats.count("schwab", CHAINS, 401) == 0


def test_a_401_refreshes_the_token_once_and_retries(clean_sandbox):
    async def action(client):
        await client.option_chain("AAPL", SANDBOX_AS_OF)
        clean_sandbox.revoke_tokens()  # Schwab expiring tokens early
        frame = await client.option_chain("AAPL", SANDBOX_AS_OF)
        return frame, client.token_refreshes

    frame, refreshes = run(_with_client(clean_sandbox, action))
    assert len(frame) > 0 and refreshes == 2
    assert clean_sandbox.stats.count("schwab", CHAINS, 401) == 1


def test_concurrent_401s_share_one_refresh(clean_sandbox):
    async def action(client):
        await client.option_chain("AAPL", SANDBOX_AS_OF)
        clean_sandbox.revoke_tokens()
        await asyncio.gather(*(client.option_chain(s, SANDBOX_AS_OF) for s in ("AAPL", "MSFT")))
        return client.token_refreshes

    assert run(_with_client(clean_sandbox, action)) == 2


def test_a_token_rejected_twice_is_an_auth_error(clean_sandbox):
    clean_sandbox.set_faults(faults("expired_token"))
    result = run(
        _with_client(clean_sandbox, lambda c: outcome(c.option_chain("AAPL", SANDBOX_AS_OF)))
    )
    assert result == "auth"
    assert clean_sandbox.stats.count("schwab", CHAINS, 401) == 2
    assert clean_sandbox.stats.count("schwab", TOKEN) == 2


def test_a_rejected_refresh_token_asks_for_a_relogin_without_leaking_it(clean_sandbox):
    async def action(client):
        with pytest.raises(ProviderError) as caught:
            await client.option_chain("AAPL", SANDBOX_AS_OF)
        return caught.value

    error = run(_with_client(clean_sandbox, action, SCHWAB_REFRESH_TOKEN="lapsed-token-value"))
    assert error.category == "auth" and "log in again" in str(error)
    assert "lapsed-token-value" not in str(error)


def test_a_rotated_refresh_token_is_kept(clean_sandbox):
    clean_sandbox.state["schwab"].rotate_refresh_token = True
    seen: list[str] = []

    async def action(client):
        client._on_new_refresh_token = seen.append
        await client.option_chain("AAPL", SANDBOX_AS_OF)
        clean_sandbox.revoke_tokens()
        await client.option_chain("AAPL", SANDBOX_AS_OF)  # refreshes with the rotated token
        return client

    client = run(_with_client(clean_sandbox, action))
    assert len(seen) == 2 and client.refresh_token == seen[-1]
    assert client.refresh_token_status().issued_at is not None


def test_a_caller_gone_mid_refresh_leaves_the_refresh_to_finish_and_its_token_kept(
    clean_sandbox,
):
    """A request cancelled (its attempt timed out) while the token refresh it started is in
    flight: the refresh completes, the rotated refresh token is kept, and the next request
    uses the new access token instead of refreshing again with a refresh token already spent."""
    clean_sandbox.state["schwab"].rotate_refresh_token = True
    clean_sandbox.set_faults("latency_ms=300-300")
    seen: list[str] = []

    async def action(client):
        client._on_new_refresh_token = seen.append
        first = asyncio.create_task(client.option_chain("AAPL", SANDBOX_AS_OF))
        await asyncio.sleep(0.1)  # the token request is at the sandbox, 0.2 s from its answer
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        frame = await client.option_chain("AAPL", SANDBOX_AS_OF)
        return frame, client

    frame, client = run(_with_client(clean_sandbox, action))
    assert not frame.empty
    assert clean_sandbox.stats.count("schwab", TOKEN) == client.token_refreshes == 1
    assert len(seen) == 1 and client.refresh_token == seen[0]


def test_a_request_that_joined_a_refresh_which_then_failed_refreshes_once_itself(
    clean_sandbox,
):
    """The first request's token refresh hangs past the client's timeout; a second request
    joins it, and when it fails asks for a token of its own, which the sandbox (healthy again)
    gives. The first request fails with its timeout; two token requests in all."""
    clean_sandbox.set_faults("timeout=1.0,hang_s=1.5")

    async def action(client):
        first = asyncio.create_task(outcome(client.option_chain("AAPL", SANDBOX_AS_OF)))
        await asyncio.sleep(0.25)  # the first refresh hangs at the sandbox
        clean_sandbox.set_faults("none")
        second = await client.option_chain("AAPL", SANDBOX_AS_OF)
        return await first, second

    first, second = run(_with_client(clean_sandbox, action, client=build_client(timeout_s=0.6)))
    assert first == "timeout"
    assert not second.empty
    assert clean_sandbox.stats.count("schwab", TOKEN) == 2


def test_refresh_token_age_warns_two_days_before_the_seven_day_lapse():
    issued = datetime(2026, 3, 1, 12, tzinfo=UTC)
    settings = {
        "SCHWAB_APP_KEY": "k",
        "SCHWAB_SECRET_KEY": "s",
        "SCHWAB_REFRESH_TOKEN": "r",
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT": issued.isoformat(),
    }
    client = schwab.create(settings)
    fresh = client.refresh_token_status(issued + timedelta(days=4, hours=23))
    due = client.refresh_token_status(issued + timedelta(days=5, hours=1))
    assert not fresh.relogin_soon and due.relogin_soon
    assert due.expires_at == issued + timedelta(days=7)
    assert due.time_left(issued + timedelta(days=5)) == timedelta(days=2)
    run(client.aclose())
    unknown = schwab.create({**settings, "SCHWAB_REFRESH_TOKEN_ISSUED_AT": ""})
    assert unknown.refresh_token_status().issued_at is None
    run(unknown.aclose())


def test_rate_limit_carries_retry_after(clean_sandbox):
    clean_sandbox.set_faults({**faults("rate_limit"), "retry_after_s": 7})

    async def action(client):
        with pytest.raises(ProviderError) as caught:
            await client.option_chain("AAPL", SANDBOX_AS_OF)
        return caught.value

    error = run(_with_client(clean_sandbox, action))
    assert error.category == "rate_limited" and error.retry_after == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("kind", "expected"),
    CHAIN_FAULT_OUTCOMES,
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    clean_sandbox.set_faults(faults(kind))
    started = time.monotonic()
    result = run(
        _with_client(clean_sandbox, lambda c: outcome(c.option_chain("AAPL", SANDBOX_AS_OF)))
    )
    assert result == expected
    assert time.monotonic() - started < 5


def test_payload_faults_reach_the_frame_as_values_to_reject(clean_sandbox):
    def chain_with(kind):
        clean_sandbox.set_faults(faults(kind))
        return run(_with_client(clean_sandbox, lambda c: c.option_chain("MSFT", SANDBOX_AS_OF)))

    bad_greeks = chain_with("bad_greeks")
    assert 0 < bad_greeks["delta"].isna().sum() < len(bad_greeks)
    assert bad_greeks["implied_volatility"].isna().sum() == bad_greeks["delta"].isna().sum()
    crossed = chain_with("crossed")
    assert 0 < (crossed["bid"] > crossed["ask"]).sum() < len(crossed)
    malformed = chain_with("malformed")
    assert malformed.drop(columns=["quote_ts"]).isna().any(axis=None)
    assert np.isfinite(malformed["strike"]).all()  # the strike key backs up a missing field


def test_missing_credentials_are_named_not_shown():
    from volaris_assets.providers.registry import missing_settings

    assert missing_settings(schwab, {"SCHWAB_APP_KEY": "x", "SCHWAB_SECRET_KEY": " "}) == [
        "SCHWAB_SECRET_KEY",
        "SCHWAB_REFRESH_TOKEN",
    ]
