"""European Black–Scholes–Merton prices and greeks with a continuous dividend yield, in numpy.

Conventions (the ones Schwab and Polygon report, so computed and vendor greeks compare directly):
- `t` is time to expiry in years, `vol`, `rate` and `div_yield` are annualised and continuous
  (0.2 means 20 %);
- delta is per unit of the underlying (puts negative), gamma per unit of the underlying squared;
- theta is the change in value per CALENDAR day, i.e. annual theta / 365 (negative for a long
  option that decays);
- vega is the change in value for one vol point, i.e. per 0.01 of vol.

Every argument broadcasts numpy-style and `is_call` may be a bool array, so a whole chain prices in
one call. At expiry (t == 0) or zero vol an option is worth its discounted intrinsic value
max(±(F − K), 0)·e^{−rt}; gamma, vega and the decay part of theta are 0 there (their limits away
from the strike), and at the strike delta is half the discounted unit. Non-positive spot or strike,
negative t or vol, or NaN anywhere give NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from volaris_assets.quant.normal import norm_cdf, norm_pdf

DAYS_PER_YEAR = 365.0
VOL_POINT = 0.01


@dataclass(frozen=True)
class _Setup:
    """The broadcast inputs and the quantities price and greeks share."""

    spot: NDArray[np.float64]
    strike: NDArray[np.float64]
    t: NDArray[np.float64]
    vol: NDArray[np.float64]
    rate: NDArray[np.float64]
    div_yield: NDArray[np.float64]
    carry: NDArray[np.float64]  # e^{-qt}
    sign: NDArray[np.float64]  # +1 call, -1 put
    spot_disc: NDArray[np.float64]  # S·e^{-qt}
    strike_disc: NDArray[np.float64]  # K·e^{-rt}
    d1: NDArray[np.float64]
    d2: NDArray[np.float64]
    stdev: NDArray[np.float64]  # σ·√t
    valid: NDArray[np.bool_]


def _setup(spot, strike, t, vol, rate, div_yield, is_call) -> _Setup:
    spot, strike, t, vol, rate, div_yield, is_call = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in (spot, strike, t, vol, rate, div_yield)),
        np.asarray(is_call, dtype=bool),
    )
    valid = (
        (spot > 0) & (strike > 0) & (t >= 0) & (vol >= 0) & np.isfinite(t + vol + rate + div_yield)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        stdev = vol * np.sqrt(t)
        carry = np.exp(-div_yield * t)
        spot_disc = spot * carry
        strike_disc = strike * np.exp(-rate * t)
        log_moneyness = np.log(spot_disc / strike_disc)  # ln(F/K)
        # With σ√t = 0, d1 = d2 = ±∞ off the strike and 0 on it: the limits the formulas want.
        degenerate = stdev == 0
        safe_stdev = np.where(degenerate, 1.0, stdev)
        d1 = np.where(
            degenerate,
            np.where(log_moneyness > 0, np.inf, np.where(log_moneyness < 0, -np.inf, 0.0)),
            log_moneyness / safe_stdev + 0.5 * safe_stdev,
        )
        d2 = np.where(degenerate, d1, d1 - stdev)
    sign = np.where(is_call, 1.0, -1.0)
    return _Setup(
        spot,
        strike,
        t,
        vol,
        rate,
        div_yield,
        carry,
        sign,
        spot_disc,
        strike_disc,
        d1,
        d2,
        stdev,
        valid,
    )


def _masked(values: NDArray[np.float64], valid: NDArray[np.bool_]) -> NDArray[np.float64]:
    return np.where(valid, values, np.nan)


def bs_price(
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> NDArray[np.float64]:
    """Black–Scholes–Merton value of European options (see the module docstring for units)."""
    s = _setup(spot, strike, t, vol, rate, div_yield, is_call)
    # θ·(S e^{-qt} N(θ d1) − K e^{-rt} N(θ d2)) covers calls (θ = 1) and puts (θ = −1) at once.
    price = s.sign * (
        s.spot_disc * norm_cdf(s.sign * s.d1) - s.strike_disc * norm_cdf(s.sign * s.d2)
    )
    # Rounding can leave a hair below zero for worthless options; a price is never negative.
    return _masked(np.maximum(price, 0.0), s.valid)


def bs_greeks(
    spot: ArrayLike,
    strike: ArrayLike,
    t: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike = 0.0,
    div_yield: ArrayLike = 0.0,
    is_call: ArrayLike = True,
) -> dict[str, NDArray[np.float64]]:
    """Delta, gamma, theta (per calendar day) and vega (per vol point) of European options."""
    s = _setup(spot, strike, t, vol, rate, div_yield, is_call)
    cdf_d1 = norm_cdf(s.sign * s.d1)
    cdf_d2 = norm_cdf(s.sign * s.d2)
    pdf_d1 = norm_pdf(s.d1)
    live = s.stdev > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        vega_annual = np.where(live, s.spot_disc * pdf_d1 * np.sqrt(s.t), 0.0)
        gamma = np.where(live, s.carry * pdf_d1 / (s.spot * s.stdev), 0.0)
        # S e^{-qt} φ(d1) σ / (2√t): the part of theta that is pure time value decay.
        decay = np.where(live, vega_annual * s.vol / (2.0 * s.t), 0.0)
        theta_annual = (
            -decay
            - s.sign * s.rate * s.strike_disc * cdf_d2
            + s.sign * s.div_yield * s.spot_disc * cdf_d1
        )
    return {
        "delta": _masked(s.sign * s.carry * cdf_d1, s.valid),
        "gamma": _masked(gamma, s.valid),
        "theta": _masked(theta_annual / DAYS_PER_YEAR, s.valid),
        "vega": _masked(vega_annual * VOL_POINT, s.valid),
    }
