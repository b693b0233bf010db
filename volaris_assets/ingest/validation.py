"""Row-level validation of canonical frames: keep the good rows, count the bad by reason.

A provider that sends one crossed quote or one NaN strike should cost one row, not the symbol.
Greeks are not reasons to reject: a missing greek is recomputed from the contract's implied
volatility (or a missing IV is implied from the mid price) with the project's own maths.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from volaris_assets.providers.base import CHAIN_NUMERIC_COLUMNS
from volaris_assets.quant.black_scholes import bs_greeks
from volaris_assets.quant.implied_vol import implied_vol
from volaris_assets.warehouse.tables import option_snapshots, text_limits

RISK_FREE_RATE = 0.04
MAX_IV = 5.0
GREEKS = ("delta", "gamma", "theta", "vega")
# The first volume a BIGINT column cannot hold (stored bars' volume is int64).
_INT64_END = 2.0**63
# The chain's bounded text that the wire decides: `occ_symbol` is built from the provider's
# strike, and an absurd one (a unit slip) makes it longer than the warehouse key. The other
# bounded columns cannot be: `symbol` and `provider` are the platform's, `right` is C or P.
_CHAIN_TEXT_LIMITS = {"occ_symbol": text_limits(option_snapshots)["occ_symbol"]}


@dataclass
class Validated:
    """The rows that passed and a count of the rows that did not, by reason."""

    frame: pd.DataFrame
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return sum(self.rejected.values())


def _split(
    frame: pd.DataFrame, checks: list[tuple[str, Any]], key: str
) -> tuple[Validated, np.ndarray]:
    """Apply (reason, bad_mask) checks in order; a row is counted under its first failed reason.
    Returns the rows kept and, as a boolean mask over `frame`, which they were.

    Masks are combined as numpy arrays: this runs once per symbol, and pandas' per-operation
    overhead on a 400-row chain was most of the cost.
    """
    keep = np.ones(len(frame), dtype=bool)
    result = Validated(frame=frame)
    for reason, bad in checks:
        hit = keep & _mask(bad)
        if hit.any():
            result.rejected[reason] += int(hit.sum())
            result.examples[reason] = str(frame[key].iloc[int(hit.argmax())])[:200]
            keep &= ~hit
    result.frame = (frame if keep.all() else frame[keep]).reset_index(drop=True)
    return result, keep


def _mask(bad: Any) -> np.ndarray:
    """A check's mask as booleans; an undecidable (NA) cell counts as bad."""
    if isinstance(bad, np.ndarray) and bad.dtype == bool:
        return bad
    return pd.Series(bad).fillna(True).to_numpy(dtype=bool)


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """A copy with `columns` as numbers (unparseable -> NaN); numeric columns are kept as they
    are, and the copy is shallow (copy-on-write keeps the caller's frame intact)."""
    out = frame.copy(deep=False)
    dtypes = frame.dtypes
    for column in columns:
        if dtypes[column].kind not in "fiu":
            out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def _too_long(frame: pd.DataFrame, limits: Mapping[str, int]) -> np.ndarray:
    """Rows holding text longer than its warehouse column allows: PostgreSQL would refuse the
    symbol's whole transaction for that one row (and SQLite would store it as it is)."""
    bad = np.zeros(len(frame), dtype=bool)
    for name, limit in limits.items():
        values = frame[name].tolist()
        bad |= np.fromiter(
            (isinstance(v, str) and len(v) > limit for v in values), bool, len(values)
        )
    return bad


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
        ("bad_volume", bars["volume"] >= _INT64_END),  # would wrap to negative in int64
        ("duplicate_key", bars.duplicated(["symbol", "timeframe", "ts"], keep="last")),
    ]
    result, _ = _split(bars, checks, key="ts")
    result.frame["volume"] = result.frame["volume"].fillna(0).astype("int64")
    return result


def validate_quotes(frame: pd.DataFrame, requested: Collection[str]) -> Validated:
    """Reject quotes that would mislead `/price` or an alert: one for a symbol that was not
    asked for (a mislabel, or a key that is no ticker), without a last price or time, with a
    non-positive last, a negative or crossed bid/ask, or a volume that is no share count; of
    a symbol's duplicates only the last is kept. A missing bid, ask or volume is no reason:
    an index has no bid or ask, and `/price` needs the last."""
    quotes = _numeric(frame, ("last", "bid", "ask", "volume", "prev_close"))
    quotes["quote_ts"] = pd.to_datetime(quotes["quote_ts"], utc=True, errors="coerce")
    last, bid, ask, volume = (
        quotes[column].to_numpy(float) for column in ("last", "bid", "ask", "volume")
    )
    checks = [
        ("not_requested", ~quotes["symbol"].isin(list(requested)).to_numpy()),
        ("missing_field", np.isnan(last) | quotes["quote_ts"].isna().to_numpy()),
        ("nonpositive_price", ~(last > 0)),
        ("negative_price", (bid < 0) | (ask < 0)),
        ("crossed_quote", (bid > ask) & (ask > 0)),
        ("bad_volume", (volume < 0) | (np.isfinite(volume) & (volume != np.round(volume)))),
        ("duplicate_key", quotes["symbol"].duplicated(keep="last").to_numpy()),
    ]
    result, _ = _split(quotes, checks, key="symbol")
    return result


# What `_expiry` says of a missing or unparseable expiration.
_NO_EXPIRY: tuple[Any, bool, float, float] = (pd.NaT, False, np.nan, np.nan)


@dataclass(frozen=True)
class _Expirations:
    """A chain's expiration column, worked out once per distinct value."""

    dates: np.ndarray  # `date` per row, NaT where the value is not a date
    expired: np.ndarray
    days: np.ndarray  # calendar days from the as-of New York date (NaN where no date)
    years: np.ndarray  # to the 16:00 New York expiry, floored at one minute

    @classmethod
    def of(cls, column: pd.Series, as_of: datetime) -> _Expirations:
        codes, distinct = pd.factorize(column.to_numpy(dtype=object))
        # A missing value's code, -1, reads the `_NO_EXPIRY` appended after the distinct values.
        facts = [*(_expiry(value, as_of) for value in distinct), _NO_EXPIRY]
        dates, expired, days, years = zip(*facts, strict=True)
        return cls(
            dates=np.array(dates, dtype=object)[codes],
            expired=np.array(expired, dtype=bool)[codes],
            days=np.array(days, dtype=float)[codes],
            years=np.array(years, dtype=float)[codes],
        )


@functools.lru_cache(maxsize=4096, typed=True)
def _expiry(value: Any, as_of: datetime) -> tuple[Any, bool, float, float]:
    """One expiration value's (date, expired, calendar days, years to its 16:00 New York
    expiry, floored at one minute) as of `as_of`; `_NO_EXPIRY` when it is not a date.

    Cached: every chain of a run lists the same few dozen expirations, and working them out
    with pandas was a third of a chain's validation.
    """
    day = pd.to_datetime(pd.Series([value], dtype=object), errors="coerce").dt.date.iloc[0]
    if pd.isna(day):
        return _NO_EXPIRY
    today = pd.Timestamp(as_of).tz_convert("America/New_York").date()
    expiry = pd.Timestamp(day).tz_localize("America/New_York") + pd.Timedelta(hours=16)
    seconds = (expiry - pd.Timestamp(as_of)).total_seconds()
    return day, day < today, float((day - today).days), max(seconds, 60.0) / (365.0 * 86400.0)


def validate_chain(frame: pd.DataFrame, as_of: datetime) -> Validated:
    """Reject contracts that cannot be traded on or trusted, then repair missing IV and greeks."""
    chain = _numeric(frame, CHAIN_NUMERIC_COLUMNS)
    expirations = _Expirations.of(chain["expiration"], as_of)
    chain["expiration"] = pd.Series(expirations.dates, index=chain.index, dtype=object)
    strike = chain["strike"].to_numpy(float)
    bid = chain["bid"].to_numpy(float)
    ask = chain["ask"].to_numpy(float)
    right = chain["right"].to_numpy(dtype=object)
    checks = [
        (
            "missing_field",
            chain["occ_symbol"].isna().to_numpy()
            | np.isnan(strike)
            | chain["right"].isna().to_numpy()
            | np.isnan(bid)
            | np.isnan(ask)
            | pd.isna(expirations.dates),
        ),
        ("bad_right", ~((right == "C") | (right == "P"))),
        ("too_long", _too_long(chain, _CHAIN_TEXT_LIMITS)),
        ("nonpositive_strike", strike <= 0),
        ("negative_price", (bid < 0) | (ask <= 0)),
        ("crossed_quote", bid > ask),
        ("expired", expirations.expired),
        ("bad_underlying", ~(chain["underlying_price"].to_numpy(float) > 0)),
        ("duplicate_key", chain["occ_symbol"].duplicated(keep="last").to_numpy()),
    ]
    result, keep = _split(chain, checks, key="occ_symbol")
    result.frame = _repair(result.frame, expirations.days[keep], expirations.years[keep])
    return result


def _repair(chain: pd.DataFrame, days: np.ndarray, years: np.ndarray) -> pd.DataFrame:
    """Fill the mark, DTE, IV and greeks a provider left out, with the project's own maths.

    `days` and `years` are each row's calendar days and years to expiry. The IV solver and the
    greeks run only on the rows that lack them (usually none).
    """
    if chain.empty:
        return chain
    bid, ask = chain["bid"].to_numpy(float), chain["ask"].to_numpy(float)
    mark = chain["mark_price"].to_numpy(float)
    # Assigned only when a mark is missing: a column assignment is about a tenth of a chain's
    # validation, and this runs once per chain of every scan.
    if chain["mark_price"].dtype != np.float64 or not (mark > 0).all():
        chain["mark_price"] = np.where(mark > 0, mark, (bid + ask) / 2.0)
    dte = chain["dte"].to_numpy(float)
    if np.isnan(dte).any():
        chain["dte"] = np.where(np.isnan(dte), days, dte)
    spot = chain["underlying_price"].to_numpy(float)
    strike = chain["strike"].to_numpy(float)
    is_call = chain["right"].to_numpy(dtype=object) == "C"
    iv = chain["implied_volatility"].to_numpy(float)
    implausible = ~((iv > 0) & (iv <= MAX_IV))
    if implausible.any():
        rows = np.flatnonzero(implausible)
        iv = iv.copy()
        iv[rows] = implied_vol(
            chain["mark_price"].to_numpy(float)[rows],
            spot[rows],
            strike[rows],
            years[rows],
            RISK_FREE_RATE,
            0.0,
            is_call[rows],
        ).vol
        chain["implied_volatility"] = iv
    greeks = np.column_stack([chain[name].to_numpy(float) for name in GREEKS])
    missing = np.isnan(greeks).any(axis=1) & np.isfinite(iv)
    if missing.any():
        solved = bs_greeks(
            spot[missing],
            strike[missing],
            years[missing],
            iv[missing],
            RISK_FREE_RATE,
            0.0,
            is_call[missing],
        )
        for index, name in enumerate(GREEKS):
            column = greeks[:, index].copy()
            column[missing] = np.where(np.isnan(column[missing]), solved[name], column[missing])
            chain[name] = column
    return chain
