"""Implied volatility: round trips through bs_price, reasons for unsolvable prices, blocks."""

from __future__ import annotations

import numpy as np
import pytest

from volaris_assets.quant import implied_vol as iv_module
from volaris_assets.quant.black_scholes import bs_greeks, bs_price
from volaris_assets.quant.implied_vol import REASON_NAMES, IVReason, IVResult, implied_vol


def _grid():
    strike, t, vol, is_call = np.meshgrid(
        100.0 * np.array([0.5, 0.7, 0.85, 0.95, 0.99, 1.0, 1.01, 1.05, 1.2, 1.5, 2.0]),
        np.array([1 / 365, 7 / 365, 30 / 365, 0.25, 1.0, 5.0]),
        np.array([0.01, 0.05, 0.15, 0.3, 0.6, 1.0, 2.0, 3.0]),
        np.array([True, False]),
        indexing="ij",
    )
    strike, t, vol, is_call = (a.ravel() for a in (strike, t, vol, is_call))
    rate = np.resize([0.0, 0.03, 0.06], strike.size)
    div = np.resize([0.0, 0.0, 0.02, 0.01], strike.size)
    return 100.0, strike, t, vol, rate, div, is_call


def test_round_trip_over_a_wide_grid():
    spot, strike, t, vol, rate, div, is_call = _grid()
    price = bs_price(spot, strike, t, vol, rate, div, is_call)
    result = implied_vol(price, spot, strike, t, rate, div, is_call)
    vega = bs_greeks(spot, strike, t, vol, rate, div, is_call)["vega"] * 100
    pinned = vega / spot > 1e-4
    assert pinned.sum() > 0.6 * pinned.size
    assert np.all(result.reason[pinned] == IVReason.OK)
    assert np.max(np.abs(result.vol[pinned] - vol[pinned])) <= 1e-10
    # Everything that solved reprices to its input, pinned or not.
    ok = result.reason == IVReason.OK
    repriced = bs_price(spot, strike[ok], t[ok], result.vol[ok], rate[ok], div[ok], is_call[ok])
    np.testing.assert_allclose(repriced, price[ok], rtol=1e-12, atol=1e-12 * spot)
    # Unsolved ones are only those whose time value is lost in float64 (or underflowed to 0).
    unsolved = set(np.unique(result.reason[~ok]))
    assert unsolved <= {IVReason.BELOW_INTRINSIC, IVReason.NONPOSITIVE_INPUT}
    assert not np.any(pinned & ~ok)


def test_grid_exercises_every_iteration_objective():
    spot, strike, t, vol, rate, div, _ = _grid()
    forward = spot * np.exp((rate - div) * t)
    x = -np.abs(np.log(forward / strike))
    beta = iv_module._black(x, vol * np.sqrt(t))
    keep = beta > 1e-300
    with np.errstate(all="ignore"):
        _, objective = iv_module._initial_guess(x[keep], beta[keep], np.exp(0.5 * x[keep]))
    assert set(np.unique(objective)) == {iv_module._LOWEST, iv_module._MIDDLE, iv_module._HIGHEST}


def test_textbook_value_and_at_the_forward():
    # Hull Example 15.6 priced at σ = 20 % inverts back to 20 %.
    prices = bs_price(42.0, 40.0, 0.5, 0.2, 0.1, 0.0, np.array([True, False]))
    result = implied_vol(prices, 42.0, 40.0, 0.5, 0.1, 0.0, np.array([True, False]))
    np.testing.assert_allclose(result.vol, 0.2, atol=1e-13)
    # Exactly at the forward (x = 0): the 1-year ATM call at 25 % vol.
    atm = bs_price(100.0, 100.0, 1.0, 0.25)
    assert implied_vol(atm, 100.0, 100.0, 1.0).vol == pytest.approx(0.25, abs=1e-14)
    # Quoted premium, not a round trip: ATM call worth 7.97 ≈ 0.4·S·σ·√T (Brenner–Subrahmanyam).
    assert implied_vol(7.97, 100.0, 100.0, 1.0).vol == pytest.approx(0.2, abs=1e-3)


@pytest.mark.parametrize(
    ("price", "spot", "strike", "t", "is_call", "reason"),
    [
        (9.0, 110.0, 100.0, 0.5, True, IVReason.BELOW_INTRINSIC),  # < intrinsic 10
        (10.0, 110.0, 100.0, 0.5, True, IVReason.BELOW_INTRINSIC),  # = intrinsic (r = 0)
        (5.0, 95.0, 100.0, 0.5, False, IVReason.BELOW_INTRINSIC),  # put intrinsic 5
        (110.0, 110.0, 100.0, 0.5, True, IVReason.ABOVE_UPPER_BOUND),  # call worth ≥ S
        (150.0, 110.0, 100.0, 0.5, True, IVReason.ABOVE_UPPER_BOUND),
        (100.0, 110.0, 100.0, 0.5, False, IVReason.ABOVE_UPPER_BOUND),  # put worth ≥ K
        (0.0, 100.0, 100.0, 0.5, True, IVReason.NONPOSITIVE_INPUT),
        (-1.0, 100.0, 100.0, 0.5, True, IVReason.NONPOSITIVE_INPUT),
        (1.0, 0.0, 100.0, 0.5, True, IVReason.NONPOSITIVE_INPUT),
        (1.0, 100.0, -5.0, 0.5, True, IVReason.NONPOSITIVE_INPUT),
        (1.0, 100.0, 100.0, 0.0, True, IVReason.EXPIRED),
        (1.0, 100.0, 100.0, -0.1, True, IVReason.EXPIRED),
        (np.nan, 100.0, 100.0, 0.5, True, IVReason.MISSING_INPUT),
        (1.0, 100.0, np.inf, 0.5, True, IVReason.MISSING_INPUT),
    ],
)
def test_unsolvable_prices_are_nan_with_a_reason(price, spot, strike, t, is_call, reason):
    result = implied_vol(price, spot, strike, t, 0.0, 0.0, is_call)
    assert np.isnan(result.vol)
    assert result.reason == reason


def test_discounting_is_part_of_the_bounds():
    # With r = 5 %, a put's bound is K·e^{-rT}, not K; a call's intrinsic is S − K·e^{-rT}.
    k_disc = 100.0 * np.exp(-0.05)
    just_below = implied_vol(k_disc * (1 - 1e-9), 10.0, 100.0, 1.0, 0.05, 0.0, False)
    assert just_below.reason == IVReason.OK and just_below.vol > 1.0
    assert implied_vol(k_disc, 10.0, 100.0, 1.0, 0.05, 0.0, False).reason == (
        IVReason.ABOVE_UPPER_BOUND
    )
    at_intrinsic = 150.0 - k_disc
    assert implied_vol(at_intrinsic, 150.0, 100.0, 1.0, 0.05, 0.0, True).reason == (
        IVReason.BELOW_INTRINSIC
    )


def test_reason_mapping_and_counts():
    assert REASON_NAMES[0] == "ok"
    assert {"below_intrinsic", "above_upper_bound", "nonpositive_input", "expired"} <= set(
        REASON_NAMES.values()
    )
    result = implied_vol(
        np.array([5.0, 0.0, 200.0, 5.0]), 100.0, 100.0, np.array([0.5, 0.5, 0.5, 0.0])
    )
    assert isinstance(result, IVResult)
    assert result.reason.dtype == np.int8
    assert result.counts() == {
        "ok": 1,
        "nonpositive_input": 1,
        "above_upper_bound": 1,
        "expired": 1,
    }


def test_broadcasting_and_blocks_larger_than_one_chunk():
    rng = np.random.default_rng(11)
    n = iv_module._BLOCK * 2 + 123
    strike = 100.0 * rng.uniform(0.8, 1.2, n)
    t = rng.uniform(0.05, 1.0, n)
    vol = rng.uniform(0.1, 0.8, n)
    is_call = rng.random(n) < 0.5
    price = bs_price(100.0, strike, t, vol, 0.02, 0.0, is_call)
    result = implied_vol(price, 100.0, strike, t, 0.02, 0.0, is_call)
    vega = bs_greeks(100.0, strike, t, vol, 0.02, 0.0, is_call)["vega"] * 100
    pinned = vega / 100.0 > 1e-4
    assert pinned.sum() > 0.95 * n
    np.testing.assert_allclose(result.vol[pinned], vol[pinned], rtol=0, atol=1e-11)
    # the same options one at a time in a 2-d layout give the same answers
    idx = np.flatnonzero(pinned)[:6]
    grid = implied_vol(
        price[idx].reshape(2, 3),
        100.0,
        strike[idx].reshape(2, 3),
        t[idx].reshape(2, 3),
        0.02,
        0.0,
        is_call[idx].reshape(2, 3),
    )
    assert grid.vol.shape == (2, 3) and grid.reason.shape == (2, 3)
    np.testing.assert_allclose(grid.vol.ravel(), result.vol[idx], rtol=1e-14)
