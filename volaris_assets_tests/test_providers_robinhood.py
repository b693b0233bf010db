"""Contract tests: the Robinhood client against the sandbox's Robinhood wire format over HTTP."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid

import httpx
import numpy as np
import pandas as pd
import pytest

from volaris_assets import redaction
from volaris_assets.ingest.validation import validate_chain
from volaris_assets.providers import robinhood
from volaris_assets.providers.base import CHAIN_COLUMNS, ProviderError
from volaris_assets.providers.http import build_client, paced_follow_ups
from volaris_assets.providers.registry import Skipped, build_sources
from volaris_assets.providers.schwab import create as create_schwab
from volaris_assets.providers.simulated import SimulatedProvider
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.sandbox.server import RateLimit
from volaris_assets_tests.sandbox_fixtures import (
    CHAIN_FAULT_OUTCOMES,
    FAST_TIMEOUT_S,
    NEAR_PUTS,
    SANDBOX_AS_OF,
    SANDBOX_PAGE_SIZES,
    assert_chain_matches,
    faults,
    outcome,
)

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

TOKEN = "/oauth2/token/"
INSTRUMENTS = "/instruments/"
OPTION_INSTRUMENTS = "/options/instruments/"
MARKET_DATA = "/marketdata/options/"
PAGE = SANDBOX_PAGE_SIZES["robinhood"]
# Robinhood prints decimals to 6 places; the simulated market's IV is rounded to 6 already.
EXACT = {"iv_tol": 1e-6, "greek_tol": 1e-6}


def run(coro):
    return asyncio.run(coro)


async def _with_client(sandbox, action, **overrides):
    settings = {**sandbox.settings(), **overrides}
    client = robinhood.create(settings, client=build_client(timeout_s=FAST_TIMEOUT_S))
    try:
        return await action(client)
    finally:
        await client.http.aclose()


async def _failure(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        await call
    return caught.value


def _chain(sandbox, symbol="AAPL", only=None, **overrides):
    args = (symbol, SANDBOX_AS_OF) if only is None else (symbol, SANDBOX_AS_OF, only)
    return run(_with_client(sandbox, lambda c: c.option_chain(*args), **overrides))


def _account(sandbox):
    return sandbox.state["robinhood"]


# ---- the chain -----------------------------------------------------------------------------


def test_chain_matches_the_simulated_market(clean_sandbox, market):
    frame = _chain(clean_sandbox)
    assert list(frame.columns) == list(CHAIN_COLUMNS)
    assert_chain_matches(
        frame, market.option_chain("AAPL", SANDBOX_AS_OF), provider="robinhood", **EXACT
    )


def test_the_chain_is_schwab_s_chain_but_for_the_provider_column(clean_sandbox):
    """What the pipeline receives cannot tell the two apart (Schwab rounds greeks to 3 places)."""

    async def schwab_chain():
        client = create_schwab(clean_sandbox.settings(), client=build_client(timeout_s=5))
        try:
            return await client.option_chain("MSFT", SANDBOX_AS_OF)
        finally:
            await client.http.aclose()

    ours = _chain(clean_sandbox, "MSFT").sort_values("occ_symbol", ignore_index=True)
    theirs = run(schwab_chain()).sort_values("occ_symbol", ignore_index=True)
    assert set(ours["provider"]) == {"robinhood"} and set(theirs["provider"]) == {"schwab"}
    pd.testing.assert_frame_equal(
        ours.drop(columns="provider"), theirs.drop(columns="provider"), atol=6e-4, rtol=0
    )


def test_a_chain_filter_asks_for_its_expirations_and_side_only(clean_sandbox, market):
    async def action(client):
        return await client.option_chain("NVDA", SANDBOX_AS_OF, NEAR_PUTS), client.pages_fetched

    frame, pages = run(_with_client(clean_sandbox, action))
    whole = market.option_chain("NVDA", SANDBOX_AS_OF)
    expected = NEAR_PUTS.apply(whole)
    assert 0 < len(expected) < len(whole) / 4
    assert_chain_matches(frame, expected, provider="robinhood", **EXACT)
    listed = expected.groupby("expiration").size()
    assert pages == sum(math.ceil(n / PAGE) for n in listed)
    assert sum(_account(clean_sandbox).batch_sizes) == len(expected)


def test_instrument_listings_follow_next_across_pages(clean_sandbox, market):
    async def action(client):
        return await client.option_chain("AAPL", SANDBOX_AS_OF), client.pages_fetched

    frame, pages = run(_with_client(clean_sandbox, action))
    per_expiration = market.option_chain("AAPL", SANDBOX_AS_OF).groupby("expiration").size()
    assert pages == sum(math.ceil(n / PAGE) for n in per_expiration) > len(per_expiration)
    assert clean_sandbox.stats.count("robinhood", OPTION_INSTRUMENTS, 200) == pages
    assert frame["occ_symbol"].is_unique


def test_market_data_is_asked_for_in_batches_of_at_most_25(clean_sandbox):
    frame = _chain(clean_sandbox)
    sizes = _account(clean_sandbox).batch_sizes
    assert max(sizes) == robinhood.MARKET_DATA_BATCH == 25
    assert sum(sizes) == len(frame) and len(sizes) == math.ceil(len(frame) / 25)
    assert clean_sandbox.stats.count("robinhood", MARKET_DATA, 200) == len(sizes)


def test_the_sandbox_refuses_a_batch_of_more_than_25_ids(clean_sandbox):
    token = run(_with_client(clean_sandbox, lambda c: c._token()))
    reply = httpx.get(
        f"{clean_sandbox.url('robinhood')}{MARKET_DATA}",
        params={"ids": ",".join(str(uuid.uuid4()) for _ in range(26))},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert reply.status_code == 400 and "no more than 25" in reply.json()["ids"][0]
    assert _account(clean_sandbox).batch_sizes == [26]


def test_class_share_symbol_round_trips(clean_sandbox, market):
    frame = _chain(clean_sandbox, "BRK.B")
    assert set(frame["symbol"]) == {"BRK.B"}
    assert frame["occ_symbol"].str.startswith("BRKB  ").all()
    assert_chain_matches(
        frame, market.option_chain("BRK.B", SANDBOX_AS_OF), provider="robinhood", **EXACT
    )


@pytest.mark.parametrize("symbol", ["ZZZZ", "SPX"])
def test_unlisted_symbols_and_indices_are_no_data(clean_sandbox, symbol):
    result = run(
        _with_client(clean_sandbox, lambda c: outcome(c.option_chain(symbol, SANDBOX_AS_OF)))
    )
    assert result == "no_data"


def test_no_volatility_is_missing_not_zero():
    """Robinhood's deep in-the-money quotes: IV "0.000000" (or null) with greeks from a model
    that found none (the shape of a payload captured by robinhood-options-mobile)."""
    instruments = [
        {"id": iid, "type": kind, "expiration_date": "2026-01-16", "strike_price": strike}
        for iid, kind, strike in (("a", "call", "7.5000"), ("b", "put", "20.0000"))
    ] + [{"id": "c", "type": "call", "expiration_date": "2026-01-16", "strike_price": "12.0000"}]
    quoted = {
        "bid_price": "3.500000",
        "ask_price": "3.650000",
        "mark_price": "3.575000",
        "last_trade_price": "3.530000",
        "open_interest": 2033,
        "volume": 2,
        "updated_at": "2025-10-17T19:59:56.475867904Z",
    }
    market = [
        {**quoted, "instrument_id": "a", "implied_volatility": "0.000000", "delta": "1.002229",
         "gamma": "-0.000006", "theta": "-0.000912", "vega": "-371.015054"},
        {**quoted, "instrument_id": "b", "implied_volatility": None, "delta": "-0.990000",
         "gamma": "0.000100", "theta": "-0.001000", "vega": "0.002000"},
        {**quoted, "instrument_id": "c", "implied_volatility": "0.443384", "delta": "0.475668",
         "gamma": "0.111314", "theta": "-0.008691", "vega": "0.032127"},
    ]  # fmt: skip
    frame = robinhood.parse_chain(
        instruments, market, {"symbol": "F", "last_trade_price": "11.250000"}, "F"
    )
    unpriced, priced = frame.iloc[:2], frame.iloc[2]
    assert unpriced[["implied_volatility", "delta", "gamma", "theta", "vega"]].isna().all(axis=None)
    assert priced["implied_volatility"] == pytest.approx(0.443384)
    assert priced["vega"] == pytest.approx(0.032127)
    assert (frame["bid"] == 3.5).all() and (frame["underlying_price"] == 11.25).all()
    assert list(frame["occ_symbol"]) == [
        "F     260116C00007500",
        "F     260116P00020000",
        "F     260116C00012000",
    ]
    assert list(frame["dte"]) == [91.0] * 3


# ---- login ---------------------------------------------------------------------------------


def test_totp_codes_are_rfc_6238_s():
    """The SHA1 test vectors of RFC 6238 appendix B, cut to 6 digits."""
    key = robinhood.mfa_key("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")  # "1234567890" * 2
    assert key == b"12345678901234567890"
    vectors = {59: "287082", 1111111109: "081804", 1234567890: "005924", 2000000000: "279037"}
    assert {at: robinhood.totp(key, at) for at in vectors} == vectors


def test_one_login_with_a_totp_code_serves_many_chains(clean_sandbox):
    async def action(client):
        for symbol in ("AAPL", "MSFT"):
            await client.option_chain(symbol, SANDBOX_AS_OF, NEAR_PUTS)
        return client.logins

    assert _account(clean_sandbox).mfa_secret  # the account requires a code
    assert run(_with_client(clean_sandbox, action)) == 1
    assert _account(clean_sandbox).grants == {"password": 1}
    assert clean_sandbox.stats.count("robinhood", TOKEN) == 1


def test_a_caller_gone_mid_login_leaves_the_login_to_finish_for_the_next_request(
    clean_sandbox,
):
    """A request cancelled (its attempt timed out) while the password login it started is in
    flight: the login completes and the next request uses its token, instead of logging in
    again (a second login, with its MFA code, on a personal brokerage account)."""
    clean_sandbox.set_faults("latency_ms=300-300")

    async def action(client):
        first = asyncio.create_task(client.option_chain("AAPL", SANDBOX_AS_OF, NEAR_PUTS))
        await asyncio.sleep(0.1)  # the login is at the sandbox, 0.2 s from its answer
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        frame = await client.option_chain("AAPL", SANDBOX_AS_OF, NEAR_PUTS)
        return frame, client.logins

    frame, logins = run(_with_client(clean_sandbox, action))
    assert not frame.empty
    assert logins == 1
    assert _account(clean_sandbox).grants == {"password": 1}


def test_an_account_without_mfa_needs_no_secret(clean_sandbox):
    _account(clean_sandbox).mfa_secret = None
    assert len(_chain(clean_sandbox, "MSFT", NEAR_PUTS, ROBINHOOD_MFA_SECRET="")) > 0


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        ("", "set ROBINHOOD_MFA_SECRET"),
        ("JBSWY3DPEHPK3PXP", "refused the MFA code"),
    ],
)
def test_a_missing_or_wrong_mfa_secret_is_an_auth_error_naming_it(clean_sandbox, secret, says):
    error = run(
        _with_client(
            clean_sandbox,
            lambda c: _failure(c.option_chain("AAPL", SANDBOX_AS_OF)),
            ROBINHOOD_MFA_SECRET=secret,
        )
    )
    assert error.category == "auth" and says in str(error)
    assert clean_sandbox.stats.count("robinhood", INSTRUMENTS) == 0


def test_a_wrong_password_is_an_auth_error_that_never_shows_it(clean_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    password = "wrong-password-canary-5521"
    error = run(
        _with_client(
            clean_sandbox,
            lambda c: _failure(c.option_chain("AAPL", SANDBOX_AS_OF)),
            ROBINHOOD_PASSWORD=password,
        )
    )
    assert error.category == "auth"
    assert "login refused (HTTP 400)" in str(error) and "ROBINHOOD_PASSWORD" in str(error)
    assert password not in str(error) and password not in repr(error.args)
    assert password not in caplog.text


def test_an_unapproved_device_asks_a_person_to_approve_it(clean_sandbox):
    device = str(uuid.uuid4())
    error = run(
        _with_client(
            clean_sandbox,
            lambda c: _failure(c.option_chain("AAPL", SANDBOX_AS_OF)),
            ROBINHOOD_DEVICE_TOKEN=device,
        )
    )
    assert error.category == "auth" and not error.retryable
    assert "verification_workflow" in str(error) and "ROBINHOOD_DEVICE_TOKEN" in str(error)
    assert device not in str(error)
    assert clean_sandbox.stats.count("robinhood", TOKEN, 403) == 1
    assert clean_sandbox.stats.count("robinhood", INSTRUMENTS) == 0


def test_a_token_is_refreshed_before_it_expires(clean_sandbox):
    _account(clean_sandbox).lifetime_s = 1.5

    async def action(client):
        await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)
        await asyncio.sleep(1.5)
        await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)
        return client.logins, client.token_refreshes

    logins, refreshes = run(_with_client(clean_sandbox, action))
    assert logins == 1 and refreshes >= 1
    assert _account(clean_sandbox).grants["refresh_token"] == refreshes
    assert clean_sandbox.stats.count("robinhood", outcome=401) == 0


def test_a_401_renews_the_token_once_and_retries(clean_sandbox):
    async def action(client):
        await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)
        _account(clean_sandbox).revoke_all()  # tokens rejected before their stated expiry
        return await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)

    assert len(run(_with_client(clean_sandbox, action))) > 0
    assert clean_sandbox.stats.count("robinhood", INSTRUMENTS, 401) == 1
    assert _account(clean_sandbox).grants == {"password": 1, "refresh_token": 1}


def test_a_refused_refresh_token_falls_back_on_a_password_login(clean_sandbox):
    async def action(client):
        await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)
        _account(clean_sandbox).revoke_all()
        _account(clean_sandbox).refresh_tokens.clear()
        return await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)

    assert len(run(_with_client(clean_sandbox, action))) > 0
    assert clean_sandbox.stats.count("robinhood", TOKEN, 400) == 1
    assert _account(clean_sandbox).grants == {"password": 2}


def test_concurrent_401s_share_one_renewal(clean_sandbox):
    async def action(client):
        await client.option_chain("MSFT", SANDBOX_AS_OF, NEAR_PUTS)
        _account(clean_sandbox).revoke_all()
        await asyncio.gather(
            *(client.option_chain(s, SANDBOX_AS_OF, NEAR_PUTS) for s in ("AAPL", "MSFT"))
        )

    run(_with_client(clean_sandbox, action))
    assert _account(clean_sandbox).grants == {"password": 1, "refresh_token": 1}


def test_a_token_rejected_twice_is_an_auth_error(clean_sandbox):
    clean_sandbox.set_faults(faults("expired_token"))
    result = run(
        _with_client(clean_sandbox, lambda c: outcome(c.option_chain("AAPL", SANDBOX_AS_OF)))
    )
    assert result == "auth"
    assert clean_sandbox.stats.count("robinhood", INSTRUMENTS, 401) == 2


# ---- the resilience path -------------------------------------------------------------------


def test_every_request_after_the_first_takes_a_turn_of_the_budget(clean_sandbox):
    """Login, listings, pages and batches all go through `http.send`, so the shared budget
    paces each (the call's first request took the turn the resilience layer gave it)."""
    turns = 0

    async def acquire() -> None:
        nonlocal turns
        turns += 1

    async def action(client):
        with paced_follow_ups(acquire):
            await client.option_chain("AAPL", SANDBOX_AS_OF)

    run(_with_client(clean_sandbox, action))
    assert turns == clean_sandbox.stats.count("robinhood") - 1 > 30


def test_rate_limit_carries_retry_after(clean_sandbox):
    clean_sandbox.set_rate_limit("robinhood", RateLimit(requests=4, per_s=30))
    error = run(
        _with_client(clean_sandbox, lambda c: _failure(c.option_chain("AAPL", SANDBOX_AS_OF)))
    )
    assert error.category == "rate_limited" and 29 <= error.retry_after <= 30


@pytest.mark.parametrize(
    ("kind", "expected"),
    CHAIN_FAULT_OUTCOMES,
)
def test_each_fault_maps_to_its_category(clean_sandbox, kind, expected):
    clean_sandbox.set_faults(faults(kind))
    started = time.monotonic()
    result = run(
        _with_client(
            clean_sandbox, lambda c: outcome(c.option_chain("AAPL", SANDBOX_AS_OF, NEAR_PUTS))
        )
    )
    assert result == expected
    assert time.monotonic() - started < 5


def test_payload_faults_reach_the_frame_as_values_to_reject(clean_sandbox):
    def chain_with(kind):
        clean_sandbox.set_faults(faults(kind))
        return _chain(clean_sandbox, "MSFT")

    bad_greeks = chain_with("bad_greeks")
    missing = bad_greeks["implied_volatility"].isna()
    assert 0 < missing.sum() < len(bad_greeks)
    assert (bad_greeks["delta"].isna() == missing).all()
    assert not (bad_greeks["implied_volatility"] <= 0).any()  # "0.000000" is no volatility
    repaired = validate_chain(bad_greeks, SANDBOX_AS_OF).frame  # solved from the mark instead
    assert repaired["implied_volatility"].isna().sum() < missing.sum() / 10
    crossed = chain_with("crossed")
    assert 0 < (crossed["bid"] > crossed["ask"]).sum() < len(crossed)
    malformed = chain_with("malformed")
    assert malformed.drop(columns=["quote_ts"]).isna().any(axis=None)
    assert np.isfinite(malformed["strike"]).all()  # instruments are not what broke


# ---- settings and secrets ------------------------------------------------------------------


def test_missing_or_malformed_credentials_are_skipped_with_a_reason():
    secret = "very-secret-robinhood-value"
    settings = {"ROBINHOOD_USERNAME": "me@example.com", "ROBINHOOD_PASSWORD": secret}
    _, skipped = build_sources(["robinhood"], settings, "chain", SimulatedProvider)
    assert skipped == [Skipped("robinhood", "missing settings: ROBINHOOD_DEVICE_TOKEN")]
    for bad in ({"ROBINHOOD_DEVICE_TOKEN": secret}, {"ROBINHOOD_MFA_SECRET": "not base32!"}):
        valid = {**settings, "ROBINHOOD_DEVICE_TOKEN": str(uuid.uuid4()), **bad}
        _, skipped = build_sources(["robinhood"], valid, "chain", SimulatedProvider)
        assert skipped == [Skipped("robinhood", "invalid settings (ValueError)")]
    _, skipped = build_sources(["robinhood"], settings, "intraday", SimulatedProvider)
    assert skipped == [Skipped("robinhood", "does not provide intraday data")]
    assert secret not in repr(skipped)


def test_secrets_never_reach_errors_or_logs(clean_sandbox, caplog):
    caplog.set_level(logging.DEBUG)
    keys = clean_sandbox.keys["robinhood"]
    errors = [
        run(
            _with_client(
                clean_sandbox,
                lambda c: _failure(c.option_chain("AAPL", SANDBOX_AS_OF)),
                **overrides,
            )
        )
        for overrides in (
            {"ROBINHOOD_PASSWORD": keys["password"] + "x"},
            {"ROBINHOOD_DEVICE_TOKEN": str(uuid.uuid4())},
            {"ROBINHOOD_MFA_SECRET": "JBSWY3DPEHPK3PXP"},
        )
    ]
    clean_sandbox.set_faults(faults("expired_token"))
    errors.append(
        run(_with_client(clean_sandbox, lambda c: _failure(c.option_chain("AAPL", SANDBOX_AS_OF))))
    )
    account = _account(clean_sandbox)
    secrets = [*keys.values(), *account.issued, *account.refresh_tokens]
    assert account.issued and account.refresh_tokens  # the last client did log in
    text = caplog.text + "\n".join(f"{e!s} {e!r}" for e in errors)
    assert [secret for secret in secrets if secret in text] == []


def test_the_resource_registers_every_robinhood_secret_for_redaction():
    values = {
        "robinhood_username": "canary-user-4471@example.com",
        "robinhood_password": "canary-password-4471",
        "robinhood_device_token": str(uuid.uuid4()),
        "robinhood_mfa_secret": "CANARYMFASECRET4471AAAAAAAAAAAAA",
    }
    resource = MarketDataResource(capability="chain", providers="robinhood", **values)
    assert resource.provider_settings()["ROBINHOOD_PASSWORD"] == values["robinhood_password"]
    leaked = redaction.redact(" ".join(values.values()))
    assert not any(value in leaked for value in values.values())
