"""Pytest fixtures and helpers for driving real provider clients against the sandbox.

`sandbox` starts one sandbox per test module on a free loopback port (a background thread) at a
fixed market clock, so expectations can be computed from `SimulatedMarket` directly;
`clean_sandbox` hands the same server to a test with faults, rate limits and stats reset.
Load with `pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from volaris_assets.providers.base import ChainFilter, ProviderError
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.sandbox.server import Sandbox, start_sandbox

# A Wednesday mid-session: chains have weeklies and monthlies, bars have whole sessions behind.
SANDBOX_AS_OF = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
# Its session: a live chain from the sandbox can stand for no earlier one (a session is past
# for a live chain 45 trading minutes after its close: `providers/live_chains.py`).
SANDBOX_SESSION = SANDBOX_AS_OF.date().isoformat()
SANDBOX_SEED = 7
# Small pages so that every pagination path runs in a contract test.
SANDBOX_PAGE_SIZES = {"polygon": 40, "alpaca": 300, "robinhood": 12}
# Hangs outlast the short client timeouts tests use (see `FAST_TIMEOUT_S`). The timeout must
# also outlast an uncached render on a slow, busy machine: at 0.4 s a clean sandbox's first
# 1-minute bars timed out once in a full CI run.
SANDBOX_HANG_S = 3.0
FAST_TIMEOUT_S = 1.0
# What a wheel scan asks for: the puts expiring 2 to 8 weeks after SANDBOX_AS_OF (two monthlies
# and the weeklies between, out of ~15 expirations).
NEAR_PUTS = ChainFilter(
    right="P",
    expires_from=SANDBOX_AS_OF.date() + timedelta(days=14),
    expires_to=SANDBOX_AS_OF.date() + timedelta(days=56),
)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with start_sandbox(
        as_of=SANDBOX_AS_OF, seed=SANDBOX_SEED, page_sizes=SANDBOX_PAGE_SIZES
    ) as running:
        yield running


@pytest.fixture
def clean_sandbox(sandbox: Sandbox) -> Sandbox:
    """The module's sandbox as if just started (no faults, no rate limits, zeroed stats)."""
    sandbox.reset({"hang_s": SANDBOX_HANG_S})
    return sandbox


@pytest.fixture(scope="module")
def market() -> SimulatedMarket:
    return SimulatedMarket(seed=SANDBOX_SEED)


# What a chain client makes of each injected fault (a 429's handling differs per provider and
# is tested on its own): the category it raises, or "ok" where validation deals with the rows.
CHAIN_FAULT_OUTCOMES = [
    ("server_error", "server_error"),
    ("timeout", "timeout"),
    ("reset", "server_error"),
    ("truncated", "bad_data"),
    ("empty_chain", "no_data"),
    ("malformed", "ok"),
    ("bad_greeks", "ok"),
    ("crossed", "ok"),
]


def faults(kind: str, rate: float = 1.0) -> dict[str, float]:
    """A profile that injects `kind` at `rate` (hangs sized for `FAST_TIMEOUT_S`)."""
    return {kind: rate, "hang_s": SANDBOX_HANG_S}


async def outcome(call: Awaitable[object]) -> str:
    """ "ok" or the `ErrorCategory` value a provider call ended with (any other exception
    propagates, which is the point: a fault must never crash a client)."""
    try:
        await call
    except ProviderError as error:
        return error.category.value
    return "ok"


def assert_chain_matches(
    got: pd.DataFrame,
    expected: pd.DataFrame,
    *,
    provider: str,
    iv_tol: float = 1e-5,
    greek_tol: float | None = 6e-4,
    mark: bool = True,
) -> None:
    """`got` (a client's parse of a sandbox chain) describes the same contracts as `expected`
    (the simulated market) within the provider's wire rounding."""
    assert set(got["provider"]) == {provider}
    got = got.sort_values("occ_symbol").reset_index(drop=True)
    expected = expected.sort_values("occ_symbol").reset_index(drop=True)
    assert list(got["occ_symbol"]) == list(expected["occ_symbol"])
    for column in ("symbol", "expiration", "right"):
        assert list(got[column]) == list(expected[column]), column
    for column in ("strike", "bid", "ask", "last", "volume", "open_interest", "dte"):
        np.testing.assert_allclose(got[column], expected[column].astype(float), atol=1e-9)
    np.testing.assert_allclose(got["underlying_price"], expected["underlying_price"], atol=1e-4)
    np.testing.assert_allclose(
        got["implied_volatility"], expected["implied_volatility"], atol=iv_tol
    )
    if mark:
        np.testing.assert_allclose(got["mark_price"], expected["mark_price"], atol=1e-4)
    if greek_tol is not None:
        for greek in ("delta", "gamma", "theta", "vega"):
            np.testing.assert_allclose(got[greek], expected[greek], atol=greek_tol)
    assert (got["quote_ts"] == pd.Timestamp(SANDBOX_AS_OF)).all()


def assert_bars_match(got: pd.DataFrame, expected: pd.DataFrame, *, provider: str) -> None:
    """Bars parsed from the wire equal the simulated market's (timestamps exactly)."""
    assert len(got) == len(expected) > 0
    assert set(got["provider"]) == {provider}
    assert list(got["ts"]) == list(expected["ts"])
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(got[column], expected[column].astype(float), atol=1e-6)
    assert set(got["timeframe"]) == set(expected["timeframe"])
