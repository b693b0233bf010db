"""The sandbox's view of the simulated market: a fixed clock, caches, and payload faults.

Every provider renderer reads canonical frames from here, so all wire formats describe the same
market at the same `as_of`; a contract test can then compare what a client parsed with
`SimulatedMarket` directly. Chains are cached per symbol (the clock is fixed), bars per request
window; faults that corrupt rows work on copies.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from volaris_assets import calendar
from volaris_assets.providers.base import ChainFilter
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.symbols import INDEX_SYMBOLS, InvalidSymbol, normalize_symbol, to_provider

# Symbols the sandbox answers as unknown, so clients' not-found paths can be exercised.
UNLISTED: frozenset[str] = frozenset({"ZZZZ", "NOPE"})
_GREEKS = ("implied_volatility", "delta", "gamma", "theta", "vega")


class LruCache:
    """A small thread-safe LRU (rendering is what makes the sandbox slow, not serving)."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> None:
        with self._lock:
            self._items[key] = value
            while len(self._items) > self._size:
                self._items.popitem(last=False)

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value, else `make()` (outside the lock: two threads may both make it)."""
        value = self.get(key)
        if value is None:
            value = make()
            self.put(key, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class SandboxMarket:
    """`SimulatedMarket` at a fixed `as_of`, with the per-symbol answers cached."""

    def __init__(self, seed: int, as_of: datetime | None = None) -> None:
        self.simulated = SimulatedMarket(seed=seed)
        self.as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
        self._chains = LruCache(256)
        self._bars = LruCache(1024)
        self._spots = LruCache(1024)
        self._closing_chains = LruCache(256)

    def set_as_of(self, as_of: datetime) -> None:
        self.as_of = as_of.astimezone(UTC)
        for cache in (self._chains, self._bars, self._spots, self._closing_chains):
            cache.clear()

    @staticmethod
    def listed(raw_symbol: str, spelled_for: str | None = None) -> str | None:
        """The canonical symbol for a provider spelling, or None when it is not listed. An index
        is listed only in the spelling of `spelled_for` (`$SPX` for Schwab, `I:SPX` in
        Polygon's market-data paths), or bare when None, as a real provider finds no `SPX`
        where it expects `$SPX`."""
        try:
            symbol = normalize_symbol(raw_symbol)
        except InvalidSymbol:
            return None
        if symbol in INDEX_SYMBOLS:
            expected = to_provider(symbol, spelled_for) if spelled_for else symbol
            if raw_symbol.strip().upper() != expected:
                return None
        return None if symbol in UNLISTED else symbol

    def chain(self, symbol: str) -> pd.DataFrame:
        return self._chains.get_or_make(
            symbol, lambda: self.simulated.option_chain(symbol, self.as_of)
        )

    def closing_chain(self, symbol: str, day: date) -> pd.DataFrame | None:
        """The chain at the close of the session on `day` (what history endpoints serve), or
        None when `day` is no session or its close is not past the sandbox clock yet."""
        try:
            close = calendar.session(day).close
        except ValueError:
            return None
        if close > self.as_of:
            return None
        return self._closing_chains.get_or_make(
            (symbol, day), lambda: self.simulated.option_chain(symbol, close)
        )

    def warm_up(self) -> None:
        """Pay the simulated market's one-off start-up now (calendar tables: ~0.3 s against
        ~10 ms for each chain after it), so that no client's first request is the slow one."""
        self.chain("SPY")

    def spot(self, symbol: str) -> float:
        return self._spots.get_or_make(symbol, lambda: self.simulated.spot(symbol, self.as_of))

    def bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Bars in [start, end), never past the sandbox clock (the future has not traded)."""
        end = min(end, self.as_of)
        if end <= start:
            return pd.DataFrame(columns=["symbol", "timeframe", "ts"])
        key = (symbol, timeframe, start, end)
        return self._bars.get_or_make(
            key, lambda: self.simulated.bars(symbol, timeframe, start, end)
        )


def chain_filter(
    right: str | None, expires_from: str | None, expires_to: str | None
) -> ChainFilter:
    """The `ChainFilter` a chain request's query spells (`right` already mapped to C/P/None,
    dates as YYYY-MM-DD); ValueError for a malformed date or range, which wires answer with
    their 400."""
    return ChainFilter(
        right=right,  # type: ignore[arg-type]  # ChainFilter checks it
        expires_from=date.fromisoformat(expires_from) if expires_from else None,
        expires_to=date.fromisoformat(expires_to) if expires_to else None,
    )


def faulted_chain(
    chain: pd.DataFrame, fault: str | None, rng: random.Random, fraction: float
) -> pd.DataFrame:
    """The chain as a faulty provider would send it: greeks missing, quotes crossed, or empty."""
    if fault == "empty_chain":
        return chain.iloc[0:0]
    if fault not in ("bad_greeks", "crossed") or chain.empty:
        return chain
    out = chain.copy()
    rows = pick_rows(len(out), rng, fraction)
    if fault == "bad_greeks":
        out.loc[out.index[rows], list(_GREEKS)] = np.nan
    else:
        bid, ask = out["bid"].to_numpy(copy=True), out["ask"].to_numpy(copy=True)
        out.loc[out.index[rows], "bid"] = ask[rows] + 0.05
        out.loc[out.index[rows], "ask"] = bid[rows]
    return out


def pick_rows(count: int, rng: random.Random, fraction: float) -> list[int]:
    """At least one, about `fraction` of `count` row positions."""
    if count == 0:
        return []
    return sorted(rng.sample(range(count), max(1, round(count * fraction))))


def malform(records: list[dict[str, Any]], rng: random.Random, fraction: float) -> None:
    """Corrupt some wire records in place: a number becomes a string, another key vanishes."""
    for index in pick_rows(len(records), rng, fraction):
        record = records[index]
        numeric_keys = [k for k, v in record.items() if _is_number(v)]
        if numeric_keys:
            record[rng.choice(numeric_keys)] = "n/a"
        if len(record) > 1:
            del record[rng.choice(sorted(record))]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return True
    return isinstance(value, str) and value.lstrip("-").replace(".", "", 1).isdigit()
