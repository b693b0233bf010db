"""IV metrics for one symbol's option chain on one date: ATM IV, term structure, skew, IV rank.

Inputs are plain numpy arrays (one row per contract) so the `iv_metrics` asset, the backfill and
the tests share one implementation. Conventions:
- times are in years (calendar days / 365), vols annualised decimals (0.25 = 25 %);
- ATM IV is the IV at the forward (or spot, if that is what the caller has), linear in strike;
- constant-maturity IV interpolates total variance σ²T like the VIX, so the 30-day point moves
  smoothly as expirations roll;
- IV rank / percentile follow tastytrade: a window of the trailing 252 sessions INCLUDING today.
  rank = (today − min) / (max − min) × 100 over the window (0 when the window is flat);
  percentile = share of the window's earlier sessions whose IV is strictly below today's × 100.
  Both are NaN when today's IV is missing or the window holds fewer than `min_obs` valid values.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

DAYS_PER_YEAR = 365.0
RANK_WINDOW = 252
MIN_OBSERVATIONS = 20
SKEW_DELTA = 0.25


def _interp_inside(x_at: float, xs: NDArray[np.float64], ys: NDArray[np.float64]) -> float:
    """Linear interpolation at x_at between the two bracketing points; NaN outside the data.

    Duplicate xs (e.g. two quotes on one strike) are averaged first so the interpolant is a
    function.
    """
    keep = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[keep], ys[keep]
    if xs.size == 0:
        return float("nan")
    ux, inverse = np.unique(xs, return_inverse=True)
    uy = np.bincount(inverse, weights=ys) / np.bincount(inverse)
    if not ux[0] <= x_at <= ux[-1]:
        return float("nan")
    return float(np.interp(x_at, ux, uy))


def atm_iv_per_expiry(
    expiry_years: ArrayLike,
    strike: ArrayLike,
    is_call: ArrayLike,
    iv: ArrayLike,
    forward_or_spot: ArrayLike,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(unique expiries, ATM IV per expiry).

    Per expiry and side, the IV at the forward is interpolated linearly in strike between the
    two strikes that bracket it; the ATM IV is the mean of the call and put values where both
    exist, else whichever exists, else NaN (forward outside the quoted strikes, or no valid IV).
    `forward_or_spot` is a scalar or one value per row (rows of one expiry share it).
    """
    expiry = np.asarray(expiry_years, dtype=np.float64)
    strike = np.asarray(strike, dtype=np.float64)
    calls = np.asarray(is_call, dtype=bool)
    iv = np.asarray(iv, dtype=np.float64)
    forward = np.broadcast_to(np.asarray(forward_or_spot, dtype=np.float64), expiry.shape)
    expiries = np.unique(expiry[np.isfinite(expiry)])
    atm = np.full(expiries.size, np.nan)
    for i, e in enumerate(expiries):
        rows = expiry == e
        f = float(np.nanmean(forward[rows])) if np.any(np.isfinite(forward[rows])) else np.nan
        sides = [
            _interp_inside(f, strike[rows & side], iv[rows & side]) for side in (calls, ~calls)
        ]
        valid = [v for v in sides if np.isfinite(v)]
        atm[i] = np.mean(valid) if valid else np.nan
    return expiries, atm


def constant_maturity_iv(
    expiry_years: ArrayLike, atm_iv: ArrayLike, target_years: ArrayLike
) -> NDArray[np.float64]:
    """ATM IV at fixed maturities (e.g. 7/30/60/90 days → the term structure).

    Between the two expirations bracketing a target, total variance σ²T is linear in T (VIX
    style); before the first or after the last expiration the vol is held flat. NaN everywhere
    when no expiry has a valid IV.
    """
    t = np.asarray(expiry_years, dtype=np.float64)
    vol = np.asarray(atm_iv, dtype=np.float64)
    target = np.asarray(target_years, dtype=np.float64)
    keep = np.isfinite(t) & np.isfinite(vol) & (t > 0) & (vol > 0)
    t, vol = t[keep], vol[keep]
    if t.size == 0:
        return np.full(target.shape, np.nan)
    order = np.argsort(t)
    t, vol = t[order], vol[order]
    variance = np.interp(target, t, vol * vol * t)
    with np.errstate(invalid="ignore", divide="ignore"):
        inside = np.sqrt(variance / target)
    return np.where(target <= t[0], vol[0], np.where(target >= t[-1], vol[-1], inside))


def skew_25d(
    expiry_years: ArrayLike,
    is_call: ArrayLike,
    delta: ArrayLike,
    iv: ArrayLike,
    target_years: float,
) -> float:
    """25-delta put IV minus 25-delta call IV at the expiry nearest `target_years`.

    Within an expiry each side's IV is interpolated linearly in |delta| at 0.25 (put deltas may
    be signed or absolute). Expiries where either side cannot be bracketed are skipped, so the
    answer comes from the nearest expiry that can form both; NaN if none can. Positive skew
    means downside protection is priced richer, the usual equity smile.
    """
    expiry = np.asarray(expiry_years, dtype=np.float64)
    calls = np.asarray(is_call, dtype=bool)
    abs_delta = np.abs(np.asarray(delta, dtype=np.float64))
    iv = np.asarray(iv, dtype=np.float64)
    expiries = np.unique(expiry[np.isfinite(expiry)])
    for e in expiries[np.argsort(np.abs(expiries - target_years), kind="stable")]:
        rows = expiry == e
        put = _interp_inside(SKEW_DELTA, abs_delta[rows & ~calls], iv[rows & ~calls])
        call = _interp_inside(SKEW_DELTA, abs_delta[rows & calls], iv[rows & calls])
        if np.isfinite(put) and np.isfinite(call):
            return put - call
    return float("nan")


def expected_move(spot: ArrayLike, iv: ArrayLike, days: ArrayLike) -> NDArray[np.float64]:
    """One-standard-deviation move S·σ·√(days/365) over `days` calendar days."""
    spot, iv, days = (np.asarray(a, dtype=np.float64) for a in (spot, iv, days))
    return spot * iv * np.sqrt(days / DAYS_PER_YEAR)


def _rank_percentile(windows: NDArray[np.float64], min_obs: int):
    """Rank and percentile of each row's last value within its row (NaN = missing)."""
    current = windows[:, -1]
    valid = np.isfinite(windows)
    count = valid.sum(axis=1)
    usable = np.isfinite(current) & (count >= min_obs)
    low = np.where(valid, windows, np.inf).min(axis=1)
    high = np.where(valid, windows, -np.inf).max(axis=1)
    spread = high - low
    with np.errstate(invalid="ignore", divide="ignore"):
        rank = np.where(spread > 0, (current - low) / spread * 100.0, 0.0)
        below = (windows[:, :-1] < current[:, None]).sum(axis=1)
        percentile = below / (count - 1) * 100.0
    return np.where(usable, rank, np.nan), np.where(usable, percentile, np.nan)


def rolling_rank_percentile(
    series: ArrayLike, window: int = RANK_WINDOW, min_obs: int = MIN_OBSERVATIONS
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """IV rank and percentile for every day of a daily series (oldest first) at once.

    Day i uses series[i − window + 1 .. i]; NaN days are skipped, not counted. Meant for
    backfills: one vectorised pass instead of a Python loop per day.
    """
    values = np.asarray(series, dtype=np.float64)
    padded = np.concatenate([np.full(window - 1, np.nan), values])
    return _rank_percentile(sliding_window_view(padded, window), min_obs)


def _window_with_today(history: ArrayLike, current: float, window: int) -> NDArray[np.float64]:
    past = np.asarray(history, dtype=np.float64).ravel()[-(window - 1) :] if window > 1 else []
    return np.append(past, current)[None, :]


def iv_rank(
    history: ArrayLike, current: float, window: int = RANK_WINDOW, min_obs: int = MIN_OBSERVATIONS
) -> float:
    """IV rank of `current` against `history` (earlier sessions, oldest first, today excluded).

    The window is the last `window − 1` sessions of history plus today.
    """
    rank, _ = _rank_percentile(_window_with_today(history, current, window), min_obs)
    return float(rank[0])


def iv_percentile(
    history: ArrayLike, current: float, window: int = RANK_WINDOW, min_obs: int = MIN_OBSERVATIONS
) -> float:
    """Share (×100) of the window's earlier sessions with IV strictly below `current`."""
    _, percentile = _rank_percentile(_window_with_today(history, current, window), min_obs)
    return float(percentile[0])
