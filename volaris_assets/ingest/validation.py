"""Row-level validation of canonical frames: keep the good rows, count the bad by reason.

A provider that sends one crossed quote or one NaN strike should cost one row, not the symbol.
Greeks are not reasons to reject: a missing greek is recomputed from the contract's implied
volatility (or a missing IV is implied from the mid price) with the project's own maths.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd

from volaris_assets.quant.black_scholes import bs_greeks
from volaris_assets.quant.implied_vol import implied_vol

RISK_FREE_RATE = 0.04
MAX_IV = 5.0
GREEKS = ("delta", "gamma", "theta", "vega")


@dataclass
class Validated:
    """The rows that passed and a count of the rows that did not, by reason."""

    frame: pd.DataFrame
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())


def _split(frame: pd.DataFrame, checks: list[tuple[str, pd.Series]], key: str) -> Validated:
    """Apply (reason, bad_mask) checks in order; a row is counted under its first failed reason."""
    keep = pd.Series(True, index=frame.index)
    result = Validated(frame=frame)
    for reason, bad in checks:
        hit = keep & bad.fillna(True).astype(bool)
        if hit.any():
            result.rejected[reason] += int(hit.sum())
            result.examples[reason] = str(frame.loc[hit, key].iloc[0])[:200]
            keep &= ~hit
    result.frame = frame[keep].reset_index(drop=True)
    return result


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = frame.copy()
    for column in columns:
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def validate_bars(frame: pd.DataFrame) -> Validated:
    """Reject bars with missing or non-positive prices, inverted ranges, negative volume, and
    keep the last of duplicate (symbol, timeframe, ts) rows."""
    bars = _numeric(frame, ("open", "high", "low", "close", "volume"))
    bars["ts"] = pd.to_datetime(bars["ts"], utc=True, errors="coerce")
    prices = bars[["open", "high", "low", "close"]]
    checks = [
        ("missing_field", bars[["ts", "open", "high", "low", "close"]].isna().any(axis=1)),
        ("nonpositive_price", (prices <= 0).any(axis=1)),
        (
            "inverted_range",
            (bars["high"] < prices.max(axis=1)) | (bars["low"] > prices.min(axis=1)),
        ),
        ("negative_volume", bars["volume"] < 0),
        ("duplicate_key", bars.duplicated(["symbol", "timeframe", "ts"], keep="last")),
    ]
    result = _split(bars, checks, key="ts")
    result.frame["volume"] = result.frame["volume"].fillna(0).astype("int64")
    return result


def validate_chain(frame: pd.DataFrame, as_of: datetime) -> Validated:
    """Reject contracts that cannot be traded on or trusted, then repair missing IV and greeks."""
    chain = _numeric(
        frame,
        (
            "strike",
            "bid",
            "ask",
            "mark_price",
            "last",
            "volume",
            "open_interest",
            "implied_volatility",
            "underlying_price",
            "dte",
            *GREEKS,
        ),
    )
    today = pd.Timestamp(as_of).tz_convert("America/New_York").date()
    expiration = pd.to_datetime(chain["expiration"], errors="coerce").dt.date
    chain["expiration"] = expiration
    checks = [
        (
            "missing_field",
            chain[["occ_symbol", "strike", "right", "bid", "ask"]].isna().any(axis=1)
            | expiration.isna(),
        ),
        ("bad_right", ~chain["right"].isin(["C", "P"])),
        ("nonpositive_strike", chain["strike"] <= 0),
        ("negative_price", (chain["bid"] < 0) | (chain["ask"] <= 0)),
        ("crossed_quote", chain["bid"] > chain["ask"]),
        ("expired", expiration.map(lambda d: d is not None and not pd.isna(d) and d < today)),
        ("bad_underlying", ~(chain["underlying_price"] > 0)),
        ("duplicate_key", chain.duplicated(["occ_symbol"], keep="last")),
    ]
    result = _split(chain, checks, key="occ_symbol")
    result.frame = _repair(result.frame, as_of)
    return result


def _repair(chain: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """Fill the mark, IV and greeks a provider left out, with the project's own maths."""
    if chain.empty:
        return chain
    chain = chain.copy()
    mid = (chain["bid"] + chain["ask"]) / 2.0
    chain["mark_price"] = chain["mark_price"].where(chain["mark_price"] > 0, mid)
    today = pd.Timestamp(as_of).tz_convert("America/New_York").date()
    chain["dte"] = chain["dte"].where(
        chain["dte"].notna(), [(e - today).days for e in chain["expiration"]]
    )
    years = _years(chain, as_of)
    spot = chain["underlying_price"].to_numpy(float)
    strike = chain["strike"].to_numpy(float)
    is_call = (chain["right"] == "C").to_numpy()
    iv = chain["implied_volatility"].to_numpy(float)
    implausible = ~((iv > 0) & (iv <= MAX_IV))
    if implausible.any():
        solved = implied_vol(
            chain["mark_price"].to_numpy(float), spot, strike, years, RISK_FREE_RATE, 0.0, is_call
        ).vol
        iv = np.where(implausible, solved, iv)
        chain["implied_volatility"] = iv
    missing = chain[list(GREEKS)].isna().any(axis=1).to_numpy() & np.isfinite(iv)
    if missing.any():
        greeks = bs_greeks(
            spot[missing],
            strike[missing],
            years[missing],
            iv[missing],
            RISK_FREE_RATE,
            0.0,
            is_call[missing],
        )
        for name in GREEKS:
            column = chain[name].to_numpy(float, copy=True)
            column[missing] = np.where(np.isnan(column[missing]), greeks[name], column[missing])
            chain[name] = column
    return chain


def _years(chain: pd.DataFrame, as_of: datetime) -> np.ndarray:
    """Years to each contract's 16:00 ET expiry, floored at one minute."""
    expiry = pd.to_datetime(chain["expiration"]).dt.tz_localize("America/New_York") + pd.Timedelta(
        hours=16
    )
    seconds = (expiry - pd.Timestamp(as_of)).dt.total_seconds().to_numpy(float)
    return np.maximum(seconds, 60.0) / (365.0 * 86400.0)
