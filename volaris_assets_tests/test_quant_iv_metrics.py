"""IV metrics on hand-computed chains and series."""

from __future__ import annotations

import math

import numpy as np
import pytest

from volaris_assets.quant.black_scholes import bs_greeks
from volaris_assets.quant.iv_metrics import (
    atm_iv_per_expiry,
    constant_maturity_iv,
    expected_move,
    iv_percentile,
    iv_rank,
    rolling_rank_percentile,
    skew_25d,
)
from volaris_assets.volatility.metrics import rank_and_percentile

# ---------------------------------------------------------------- IV rank and percentile


def test_rank_and_percentile_hand_computed():
    history = np.arange(30.0, 61.0)  # 30..60, today excluded
    assert iv_rank(history, 45.0) == pytest.approx(50.0)
    # 15 of the 31 earlier sessions (30..44) are strictly below 45
    assert iv_percentile(history, 45.0) == pytest.approx(15 / 31 * 100)
    assert iv_rank(history, 60.0) == pytest.approx(100.0)
    assert iv_percentile(history, 60.0) == pytest.approx(30 / 31 * 100)
    # today outside the history widens the window: a new low ranks 0, a new high 100
    assert iv_rank(history, 20.0) == 0.0 and iv_percentile(history, 20.0) == 0.0
    assert iv_rank(history, 90.0) == 100.0 and iv_percentile(history, 90.0) == 100.0


def test_flat_window_ranks_zero_and_short_window_is_nan():
    assert iv_rank(np.full(40, 0.3), 0.3) == 0.0
    assert iv_percentile(np.full(40, 0.3), 0.3) == 0.0
    assert math.isnan(iv_rank(np.arange(10.0), 5.0))  # 11 observations < 20
    assert math.isnan(iv_rank(np.arange(10.0), 5.0, min_obs=20))
    assert iv_rank(np.arange(10.0), 5.0, min_obs=5) == pytest.approx(5 / 9 * 100)
    assert math.isnan(iv_rank(np.arange(40.0), float("nan")))


def test_window_is_trailing_252_sessions_including_today():
    # an old spike 300 sessions back must not count; the last 251 earlier sessions are 10..260
    history = np.concatenate([np.full(49, 1000.0), np.arange(10.0, 261.0)])
    assert history.size == 300
    assert iv_rank(history, 135.0) == pytest.approx((135 - 10) / (260 - 10) * 100)
    # one more day of history would bring the 1000 in
    assert iv_rank(history, 135.0, window=253) == pytest.approx((135 - 10) / (1000 - 10) * 100)


def test_missing_days_are_skipped():
    history = np.arange(30.0, 61.0)
    history[::3] = np.nan  # 30, 33, ..., 60 missing: min 31, max 59
    assert iv_rank(history, 45.0) == pytest.approx((45 - 31) / (59 - 31) * 100)
    earlier = history[np.isfinite(history)]
    assert iv_percentile(history, 45.0) == pytest.approx((earlier < 45).sum() / earlier.size * 100)


def test_rolling_matches_day_by_day():
    rng = np.random.default_rng(5)
    series = 0.2 + 0.05 * np.cumsum(rng.normal(size=600)) / 10
    series[rng.random(600) < 0.05] = np.nan
    rank, pct = rolling_rank_percentile(series, window=252, min_obs=20)
    for i in range(0, 600, 7):
        expected_rank = iv_rank(series[:i], series[i])
        expected_pct = iv_percentile(series[:i], series[i])
        np.testing.assert_allclose([rank[i], pct[i]], [expected_rank, expected_pct], equal_nan=True)
    assert np.all(np.isnan(rank[:19]))  # too few observations at the start
    assert np.nanmin(rank) >= 0 and np.nanmax(rank) <= 100


# ---------------------------------------------------------------- term structure


def test_constant_maturity_interpolates_total_variance():
    expiry = np.array([37 / 365, 7 / 365])  # unsorted on purpose
    atm = np.array([0.20, 0.30])
    # by hand: w1 = 0.3²·7/365 = 0.63/365, w2 = 0.2²·37/365 = 1.48/365;
    # at 30 days w = (0.63 + 0.85·23/30)/365 = 1.2816667/365, σ = √(1.2816667/30) = 0.2066935
    got = constant_maturity_iv(expiry, atm, np.array([30 / 365]))
    assert got[0] == pytest.approx(math.sqrt((0.63 + 0.85 * 23 / 30) / 30), rel=1e-12)
    assert got[0] == pytest.approx(0.2066935, abs=1e-7)
    # linear-in-vol would give 0.2233; the variance interpolation is what we want
    assert abs(got[0] - (0.30 + (0.20 - 0.30) * 23 / 30)) > 0.01


def test_constant_maturity_extrapolates_flat_and_skips_missing():
    expiry = np.array([7, 14, 37, 64], dtype=float) / 365
    atm = np.array([0.30, np.nan, 0.20, 0.25])
    got = constant_maturity_iv(expiry, atm, np.array([1, 7, 37, 90, 400]) / 365)
    np.testing.assert_allclose(got, [0.30, 0.30, 0.20, 0.25, 0.25])
    assert np.all(np.isnan(constant_maturity_iv(expiry, np.full(4, np.nan), np.array([0.1, 0.2]))))


# ---------------------------------------------------------------- ATM IV


def _chain():
    strikes = np.array([90.0, 95.0, 100.0, 105.0, 110.0])
    rows = []
    for expiry in (0.1, 0.5):
        for k in strikes:
            rows.append((expiry, k, True, 0.20 + 0.002 * (k - 100)))
            rows.append((expiry, k, False, 0.22 + 0.002 * (k - 100)))
    # a third expiry with calls only
    for k in strikes:
        rows.append((1.0, k, True, 0.25))
    expiry, strike, is_call, iv = (np.array(c) for c in zip(*rows, strict=True))
    return expiry, strike, is_call.astype(bool), iv.astype(float)


def test_atm_iv_interpolates_in_strike_and_averages_sides():
    expiry, strike, is_call, iv = _chain()
    expiries, atm = atm_iv_per_expiry(expiry, strike, is_call, iv, 102.0)
    np.testing.assert_array_equal(expiries, [0.1, 0.5, 1.0])
    # forward 102: call 0.204, put 0.224 → 0.214; calls-only expiry → 0.25
    np.testing.assert_allclose(atm, [0.214, 0.214, 0.25])


def test_atm_iv_per_row_forward_missing_quotes_and_out_of_range():
    expiry, strike, is_call, iv = _chain()
    forward = np.where(expiry == 0.5, 120.0, 100.0)  # 120 is outside the quoted strikes
    iv = iv.copy()
    iv[(expiry == 0.1) & ~is_call] = np.nan  # puts unquoted on the first expiry
    _, atm = atm_iv_per_expiry(expiry, strike, is_call, iv, forward)
    assert atm[0] == pytest.approx(0.20)
    assert math.isnan(atm[1])
    assert atm[2] == pytest.approx(0.25)


def test_atm_iv_duplicate_strikes_are_averaged():
    _, atm = atm_iv_per_expiry(
        [0.2, 0.2, 0.2], [100.0, 100.0, 110.0], [True, True, True], [0.2, 0.3, 0.35], 105.0
    )
    assert atm[0] == pytest.approx(0.30)


# ---------------------------------------------------------------- skew


def test_skew_hand_computed_at_nearest_expiry():
    put_d = [-0.10, -0.20, -0.30, -0.50]
    put_iv = [0.35, 0.30, 0.27, 0.22]
    call_d = [0.50, 0.30, 0.20, 0.10]
    call_iv = [0.21, 0.19, 0.18, 0.175]
    near = (0.08, put_d, put_iv, call_d, call_iv)
    far = (0.5, put_d, [v + 0.1 for v in put_iv], call_d, call_iv)
    expiry, is_call, delta, iv = [], [], [], []
    for e, pd, piv, cd, civ in (near, far):
        expiry += [e] * 8
        is_call += [False] * 4 + [True] * 4
        delta += pd + cd
        iv += piv + civ
    # near expiry: put 0.285, call 0.185 at 25 delta
    assert skew_25d(expiry, is_call, delta, iv, 30 / 365) == pytest.approx(0.10)
    assert skew_25d(expiry, is_call, delta, iv, 0.4) == pytest.approx(0.20)


def test_skew_skips_expiries_that_cannot_form_both_sides():
    expiry = [0.08] * 3 + [0.3] * 4
    is_call = [False, False, True] + [False, False, True, True]
    delta = [-0.1, -0.4, 0.3] + [-0.1, -0.4, 0.1, 0.4]
    iv = [0.3, 0.25, 0.2] + [0.32, 0.26, 0.2, 0.22]
    # nearest expiry has a single call quote, so the 0.3-year one answers: put 0.32→0.26 over
    # |Δ| 0.1→0.4 gives 0.29 at 0.25, call 0.20→0.22 gives 0.21; skew 0.08
    assert skew_25d(expiry, is_call, delta, iv, 0.08) == pytest.approx(0.08)
    assert math.isnan(skew_25d(expiry[:3], is_call[:3], delta[:3], iv[:3], 0.08))


def _smile_chain(slope: float):
    spot, t = 100.0, 30 / 365
    strikes = np.arange(70.0, 131.0, 2.5)
    smile = 0.22 + slope * np.log(strikes / spot)
    deltas = [bs_greeks(spot, strikes, t, smile, is_call=c)["delta"] for c in (True, False)]
    expiry = np.full(2 * strikes.size, t)
    is_call = np.r_[np.ones(strikes.size, bool), np.zeros(strikes.size, bool)]
    return expiry, is_call, np.r_[deltas[0], deltas[1]], np.r_[smile, smile], t


def test_skew_sign_on_a_synthetic_smile():
    # equity-style smile (downside richer) → positive skew; the mirror image → negative
    expiry, is_call, delta, iv, t = _smile_chain(-0.25)
    assert skew_25d(expiry, is_call, delta, iv, t) > 0.02
    expiry, is_call, delta, iv, t = _smile_chain(+0.25)
    assert skew_25d(expiry, is_call, delta, iv, t) < -0.02


# ---------------------------------------------------------------- expected move


def test_expected_move():
    assert expected_move(100.0, 0.2, 365) == pytest.approx(20.0)
    np.testing.assert_allclose(
        expected_move(np.array([100.0, 50.0]), 0.3, np.array([30, 7])),
        [100 * 0.3 * math.sqrt(30 / 365), 50 * 0.3 * math.sqrt(7 / 365)],
    )


def test_the_live_asset_ranks_as_the_bootstrap_does():
    """`iv_metrics` (`rank_and_percentile`, history without today) and `iv_history_bootstrap`
    (`rolling_rank_percentile` over the series) give every day the same rank and percentile:
    a new high is 100 and 100, the window is 252 sessions, and the 20th observation is the
    first ranked."""
    series = np.concatenate([[0.05], np.linspace(0.1, 0.2, 260), [0.3]])
    series[40] = np.nan  # a session without a measurement
    ranks, percentiles = rolling_rank_percentile(series)
    for day in range(1, series.size):
        rank, percentile = rank_and_percentile(series[:day], series[day])
        if np.isnan(series[day]) or np.isnan(ranks[day]):
            assert (rank, percentile) == (None, None), day
        else:
            assert rank == pytest.approx(ranks[day], abs=1e-6), day
            assert percentile == pytest.approx(percentiles[day], abs=1e-6), day
    assert rank_and_percentile(series[:-1], 0.3) == (100.0, 100.0)
    assert rank_and_percentile(series[:18], 0.15) == (None, None)  # 18 earlier + today: 19
    assert rank_and_percentile(series[:19], 0.15)[0] is not None  # 19 earlier + today: 20
