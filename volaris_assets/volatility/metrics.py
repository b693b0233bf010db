"""One symbol's chain -> the `iv_metrics` numbers (the maths is in `quant.iv_metrics`)."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

from volaris_assets.quant import iv_metrics as ivm

TERM_DAYS = (7, 30, 60, 90)
SKEW_TARGET_DAYS = 30


def _years_to_expiry(chain: pd.DataFrame, as_of: datetime) -> np.ndarray:
    expiry = pd.to_datetime(chain["expiration"]).dt.tz_localize("America/New_York") + pd.Timedelta(
        hours=16
    )
    seconds = (expiry - pd.Timestamp(as_of)).dt.total_seconds().to_numpy(float)
    return np.maximum(seconds, 60.0) / (365.0 * 86400.0)


def chain_metrics(chain: pd.DataFrame, as_of: datetime) -> dict[str, float | date | None]:
    """ATM term structure, 30-day constant-maturity IV, 25-delta skew and expected move.

    The ATM IV of each expiry is read at the spot (the chain carries no forward); for the
    30-day point that differs from the forward by well under a strike step at equity rates.
    """
    chain = chain[np.isfinite(chain["implied_volatility"].to_numpy(float))]
    if chain.empty:
        return {}
    years = _years_to_expiry(chain, as_of)
    spot = float(chain["underlying_price"].median())
    is_call = (chain["right"] == "C").to_numpy()
    iv = chain["implied_volatility"].to_numpy(float)
    expiry_years, atm = ivm.atm_iv_per_expiry(
        years, chain["strike"].to_numpy(float), is_call, iv, spot
    )
    targets = np.array(TERM_DAYS, dtype=float) / 365.0
    term = ivm.constant_maturity_iv(expiry_years, atm, targets)
    skew = ivm.skew_25d(
        years, is_call, chain["delta"].to_numpy(float), iv, SKEW_TARGET_DAYS / 365.0
    )
    finite = np.isfinite(atm)
    nearest_move, nearest_expiry = None, None
    if finite.any():
        first = int(np.argmax(finite))
        nearest_years = float(expiry_years[first])
        nearest_move = float(ivm.expected_move(spot, float(atm[first]), nearest_years * 365.0))
        nearest_expiry = _expiry_for(chain, years, nearest_years)
    metrics: dict[str, float | date | None] = {
        f"iv_{days}d": _clean(value) for days, value in zip(TERM_DAYS, term, strict=False)
    }
    metrics.update(
        atm_iv_30d=metrics["iv_30d"],
        skew_25d=_clean(skew),
        expected_move=_clean(nearest_move),
        expected_move_expiration=nearest_expiry,
        underlying_price=spot,
    )
    return metrics


def rank_and_percentile(
    history: np.ndarray, current: float | None
) -> tuple[float | None, float | None]:
    """IV rank and percentile of `current` against the trailing window: the last
    RANK_WINDOW - 1 sessions of `history` (earlier sessions, oldest first, NaN where none was
    measured; today excluded) and today, as `iv_history_bootstrap` ranks with
    `rolling_rank_percentile`. (Appending today here as well counted it twice: a new high's
    percentile could not reach 100, and the window lost its oldest session.)"""
    if current is None or not np.isfinite(current):
        return None, None
    return _clean(ivm.iv_rank(history, current)), _clean(ivm.iv_percentile(history, current))


def _expiry_for(chain: pd.DataFrame, years: np.ndarray, target: float) -> date:
    index = int(np.argmin(np.abs(years - target)))
    return pd.Timestamp(chain["expiration"].iloc[index]).date()


def _clean(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if np.isfinite(value) else None
