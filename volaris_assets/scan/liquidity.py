"""The scan's priority order from the project's own daily bars: most liquid first.

Liquidity is the median dollar volume (close x volume) over the 20 sessions up to the scanned one,
read from `price_bars`, so it reflects the market the providers report, not the simulated
market's figures that `tickers.liquidity_rank` is drawn from. The median, not the mean: one
index-rebalance or news day does not move a symbol up the queue for a month. Symbols without
daily bars in that window (the scan universe is wider than the S&P 500 the bars cover, and a
fresh install has none) keep the shipped order, after the ranked ones.
"""

from __future__ import annotations

from datetime import date, datetime, time

import pandas as pd
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

LIQUIDITY_SESSIONS = 20


def median_dollar_volume(warehouse: Warehouse, symbols: list[str], day: date) -> pd.Series:
    """Per symbol with daily bars, the median close x volume over the LIQUIDITY_SESSIONS
    sessions ending with `day`."""
    window = calendar.sessions_between(calendar.FIRST_SESSION, day)[-LIQUIDITY_SESSIONS:]
    if not window or not symbols:
        return pd.Series(dtype=float)
    bars = tables.price_bars
    first, last = (
        warehouse.instant(datetime.combine(s.day, time(0), calendar.UTC))
        for s in (window[0], window[-1])
    )
    frame = warehouse.read_frame(
        sa.select(bars.c.symbol, bars.c.close, bars.c.volume).where(
            bars.c.symbol.in_(symbols),
            bars.c.timeframe == "1d",
            bars.c.ts >= first,
            bars.c.ts <= last,
        )
    )
    if frame.empty:
        return pd.Series(dtype=float)
    dollars = frame["close"].astype(float) * frame["volume"].astype(float)
    return dollars.groupby(frame["symbol"]).median()


def by_liquidity(warehouse: Warehouse, symbols: list[str], day: date) -> list[str]:
    """`symbols` most liquid first by their own daily bars; those without bars follow in their
    given (shipped) order."""
    medians = median_dollar_volume(warehouse, symbols, day)
    ranked = sorted(medians.index, key=lambda symbol: (-medians[symbol], symbol))
    known = set(ranked)
    return ranked + [symbol for symbol in symbols if symbol not in known]
