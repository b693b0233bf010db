"""Wheel-strategy arithmetic: which puts to sell and what they pay.

Conventions (stated because tools differ): premium is the mid price per share; return on
collateral is premium / strike (the cash secured per share is the strike); monthly return is
that scaled by 30/DTE and annual return by 365/DTE (simple, not compounded), with calendar DTE.
Deltas are the puts' own (negative) deltas.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd


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


def wheel_candidates(chain: pd.DataFrame, settings: WheelSettings) -> pd.DataFrame:
    """The puts at the expiration nearest the target DTE whose delta is inside the band."""
    puts = chain[(chain["right"] == "P") & (chain["dte"] >= settings.min_dte)]
    if puts.empty:
        return puts.iloc[0:0]
    distance = (puts["dte"] - settings.target_dte).abs()
    nearest = puts.loc[distance == distance.min(), "expiration"].min()
    chosen = puts[
        (puts["expiration"] == nearest)
        & puts["delta"].between(settings.delta_min, settings.delta_max)
        & (puts["bid"] > 0)
    ].copy()
    premium = (chosen["bid"] + chosen["ask"]) / 2.0
    on_collateral = premium / chosen["strike"]
    chosen["premium"] = premium.round(4)
    chosen["monthly_return"] = (on_collateral * 30.0 / chosen["dte"]).round(6)
    chosen["annual_return"] = (on_collateral * 365.0 / chosen["dte"]).round(6)
    return chosen.sort_values("strike", ascending=False).reset_index(drop=True)


def best_premiums(frame: pd.DataFrame, top: int = 10) -> list[dict]:
    """The highest annual returns, for summaries and notifications."""
    if frame.empty:
        return []
    best = frame.nlargest(top, "annual_return")
    return [
        {
            "symbol": row.symbol,
            "strike": float(row.strike),
            "expiration": str(row.expiration),
            "premium": float(row.premium),
            "delta": None if np.isnan(row.delta) else round(float(row.delta), 3),
            "annual_return": round(float(row.annual_return), 4),
        }
        for row in best.itertuples()
    ]


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
        row = chosen.nlargest(1, "annual_return")
        value = float(row["annual_return"].iloc[0])
        if not math.isfinite(value):
            return
        self._seen += 1
        item = (value, -self._seen, best_premiums(row, top=1)[0])
        if len(self._heap) < self.size:
            heapq.heappush(self._heap, item)
        else:
            heapq.heappushpop(self._heap, item)

    def best(self) -> list[dict]:
        """The best candidates, highest annual return first."""
        return [row for _, _, row in sorted(self._heap, reverse=True)]
