"""Wheel-strategy arithmetic: which puts to sell and what they pay.

Conventions (stated because tools differ): premium is the mid price per share; return on
collateral is premium / strike (the cash secured per share is the strike); monthly return is
that scaled by 30/DTE and annual return by 365/DTE (simple, not compounded), with calendar DTE.
Deltas are the puts' own (negative) deltas.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from volaris_assets.providers.base import ChainFilter

# Half-width, in days, of the expirations a scan asks a provider for around its target DTE.
# Monthly expirations are at most 35 days apart, so a window this wide holds one wherever a
# monthly cycle is listed; a chain with nothing inside it is fetched whole (see `request_window`).
WINDOW_DAYS = 21
# What a candidate keeps of its contract: the chain's columns that `stock_premiums` stores.
CANDIDATE_COLUMNS = (
    "symbol",
    "expiration",
    "strike",
    "dte",
    "bid",
    "ask",
    "delta",
    "implied_volatility",
    "volume",
    "open_interest",
    "underlying_price",
    "provider",
)
EMPTY_STAMP: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class WheelSettings:
    target_dte: int = 30
    delta_min: float = -0.35
    delta_max: float = -0.15
    min_dte: int = 7

    def __post_init__(self) -> None:
        if not -1.0 <= self.delta_min < self.delta_max <= 0.0:
            raise ValueError(
                f"delta band must satisfy -1 <= delta_min < delta_max <= 0 for puts, got "
                f"[{self.delta_min}, {self.delta_max}]"
            )
        if self.target_dte < 1 or self.min_dte < 0:
            raise ValueError("target_dte must be >= 1 and min_dte >= 0")

    def request_window(self, today: date) -> ChainFilter:
        """The puts a scan on `today` needs from a provider: those expiring within WINDOW_DAYS
        of the target DTE (and at least min_dte away).

        Exact, not a heuristic: when any put expires inside the window, the expiration nearest
        the target is inside it too (anything outside is further away than the window's edge),
        so `wheel_candidates` picks from the window what it would pick from the whole chain.
        When none does, the caller must fetch the whole chain instead.
        """
        nearest = max(self.min_dte, self.target_dte - WINDOW_DAYS)
        return ChainFilter(
            right="P",
            expires_from=today + timedelta(days=nearest),
            expires_to=today + timedelta(days=max(nearest, self.target_dte + WINDOW_DAYS)),
        )


def wheel_candidates(
    chain: pd.DataFrame, settings: WheelSettings, stamp: Mapping[str, Any] = EMPTY_STAMP
) -> pd.DataFrame:
    """The puts at the expiration nearest the target DTE whose delta is inside the band, as
    `stock_premiums` rows: CANDIDATE_COLUMNS, the premium and returns, and `stamp` (columns with
    one value for every row, such as the scan date).

    Rows are picked on numpy arrays and the frame is built once from them: this runs per symbol
    of a scan, where pandas' fixed cost per operation (a row take over every column of the
    chain, then a column added at a time) cost more than the maths.
    """
    dte = chain["dte"].to_numpy(float)
    puts = (chain["right"].to_numpy(dtype=object) == "P") & (dte >= settings.min_dte)
    rows = np.flatnonzero(puts & _in_band(chain, settings))
    if rows.size:
        distance = np.abs(dte - settings.target_dte)
        expiration = chain["expiration"].to_numpy(dtype=object)
        closest = expiration[puts & (distance == distance[puts].min())]
        nearest = min((day for day in closest if not pd.isna(day)), default=None)
        rows = rows[expiration[rows] == nearest]
        rows = rows[np.argsort(-chain["strike"].to_numpy(float)[rows], kind="stable")]
    premium = (chain["bid"].to_numpy(float)[rows] + chain["ask"].to_numpy(float)[rows]) / 2.0
    on_collateral = premium / chain["strike"].to_numpy(float)[rows]
    days = dte[rows]
    return pd.DataFrame(
        {
            **{name: chain[name].array[rows] for name in CANDIDATE_COLUMNS},  # dtypes kept
            "premium": np.round(premium, 4),
            "monthly_return": np.round(on_collateral * 30.0 / days, 6),
            "annual_return": np.round(on_collateral * 365.0 / days, 6),
            **stamp,  # a scalar fills every row
        }
    )


def _in_band(chain: pd.DataFrame, settings: WheelSettings) -> np.ndarray:
    """Rows a put seller can take: delta inside the band and a bid to sell at."""
    delta = chain["delta"].to_numpy(float)
    return (
        (delta >= settings.delta_min)
        & (delta <= settings.delta_max)
        & (chain["bid"].to_numpy(float) > 0)
    )


def best_premiums(frame: pd.DataFrame, top: int = 10) -> list[dict]:
    """The highest annual returns, for summaries and notifications."""
    if frame.empty:
        return []
    return [_summary(row) for row in frame.nlargest(top, "annual_return").to_dict("records")]


def _summary(row: Mapping[str, Any]) -> dict:
    """One candidate as summaries and notifications show it."""
    delta = float(row["delta"])
    return {
        "symbol": row["symbol"],
        "strike": float(row["strike"]),
        "expiration": str(row["expiration"]),
        "premium": float(row["premium"]),
        "delta": None if np.isnan(delta) else round(delta, 3),
        "annual_return": round(float(row["annual_return"]), 4),
    }


class TopPremiums:
    """Each symbol's best candidate, keeping only the `size` best of the scan as it streams by.

    What `best_premiums` over every symbol's best row would return, without holding a frame
    per symbol until the end: that made a 5,000-symbol scan's memory grow with the universe.
    Ties keep the symbol seen first, as `nlargest` does.
    """

    def __init__(self, size: int = 10) -> None:
        self.size = size
        self._heap: list[tuple[float, int, dict]] = []
        self._seen = 0

    def offer(self, chosen: pd.DataFrame) -> None:
        """Consider one symbol's candidates (a `wheel_candidates` frame)."""
        if chosen.empty:
            return
        returns = chosen["annual_return"].to_numpy(float)
        if np.isnan(returns).all():
            return
        best = int(np.nanargmax(returns))  # the first of equal bests, as `nlargest` keeps
        value = float(returns[best])
        if not math.isfinite(value):
            return
        self._seen += 1
        item = (value, -self._seen, _summary(chosen.iloc[best]))
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, item)
        else:
            heapq.heappushpop(self._heap, item)

    def best(self) -> list[dict]:
        """The best candidates, highest annual return first."""
        return [row for _, _, row in sorted(self._heap, reverse=True)]
