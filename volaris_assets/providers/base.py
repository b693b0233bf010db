"""The contract between provider clients and the rest of the platform.

Every provider module (simulated, schwab, polygon, ...) turns its wire format into the canonical
frames described here and reports failure as a `ProviderError` carrying one `ErrorCategory`.
Nothing in this package imports Dagster: providers are plain async Python so the sandbox, the
benchmarks and the assets can all drive them the same way.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from volaris_assets.symbols import InvalidSymbol, normalize_symbol


class ErrorCategory(enum.StrEnum):
    """Why a symbol failed; the values are stored in `sync_stock_results.error_type`."""

    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    # Nothing answered: connection refused or the host name did not resolve. Told apart from
    # `server_error` (a provider that answered badly) because the fix differs: a wrong
    # `*_API_BASE` or a provider that is down, not a bad minute.
    UNREACHABLE = "unreachable"
    AUTH = "auth"
    NOT_FOUND = "not_found"
    NO_DATA = "no_data"
    BAD_DATA = "bad_data"
    CIRCUIT_OPEN = "circuit_open"
    UNKNOWN = "unknown"
    # Not a provider failure: the warehouse refused the write (connection lost, database down).
    WRITE_FAILED = "write_failed"


# Transient categories: worth another attempt on the same provider (with backoff) and worth
# the retry sensor's attention. Everything else is permanent for this provider and moves the
# fallback chain on (or is recorded as final). `unreachable` is here because a provider that
# restarts refuses connections for a few seconds; a host that stays dead costs little, as a
# refusal comes back at once and counts towards opening the circuit breaker, which then stops
# the retries.
RETRYABLE_CATEGORIES: frozenset[ErrorCategory] = frozenset(
    {
        ErrorCategory.RATE_LIMITED,
        ErrorCategory.TIMEOUT,
        ErrorCategory.SERVER_ERROR,
        ErrorCategory.UNREACHABLE,
    }
)
# The providers with a client module (`registry.PROVIDER_MODULES`), named here so that settings
# parsed below the registry (e.g. `http.parse_response_caps`) can refuse a misspelt name.
PROVIDER_NAMES: tuple[str, ...] = (
    "schwab",
    "polygon",
    "yahoo",
    "tiingo",
    "alpaca",
    "finnhub",
    "databento",
    "robinhood",
)


class ProviderError(Exception):
    """A categorised provider failure.

    `message` must never contain a secret: provider modules build it from status codes and
    field names, not from request URLs or headers (which carry keys and tokens).
    """

    def __init__(
        self,
        category: ErrorCategory,
        message: str,
        *,
        provider: str = "",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.category = ErrorCategory(category)
        self.provider = provider
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return self.category in RETRYABLE_CATEGORIES

    def __str__(self) -> str:
        prefix = f"{self.provider}: " if self.provider else ""
        return f"{prefix}{self.category.value}: {self.args[0]}"


# Canonical frame columns. Providers return exactly these columns (extra columns are dropped by
# `canonical()`); the warehouse tables are a superset. Conventions every provider follows:
# - bars: `ts` is the bar START, tz-aware UTC, for 1m/5m; daily bars are stamped with the session
#   DATE at 00:00 UTC whatever the provider sends (midnight ET, midnight Central...).
# - chains: `occ_symbol` is rebuilt with `symbols.occ_symbol` (21 chars, root padded to 6) from
#   underlying/expiration/right/strike, never copied from the wire; `expiration` is a `date`;
#   `right` is "C" or "P"; `implied_volatility` is a decimal (Schwab's percent is divided by 100);
#   greeks a provider marks missing (-999, "NaN", absent) are NaN; `quote_ts` is tz-aware UTC;
#   `dte` is calendar days from the quote's New York date to expiration; theta is per day and
#   vega per vol point (0.01), as Schwab and Polygon send them.
BAR_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timeframe",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "provider",
)

CHAIN_COLUMNS: tuple[str, ...] = (
    "symbol",
    "occ_symbol",
    "expiration",
    "strike",
    "right",
    "bid",
    "ask",
    "mark_price",
    "last",
    "volume",
    "open_interest",
    "implied_volatility",
    "delta",
    "gamma",
    "theta",
    "vega",
    "underlying_price",
    "dte",
    "provider",
    "quote_ts",
)

# The chain columns that hold numbers; the others are names, dates and a timestamp.
CHAIN_NUMERIC_COLUMNS: tuple[str, ...] = tuple(
    c
    for c in CHAIN_COLUMNS
    if c not in ("symbol", "occ_symbol", "expiration", "right", "provider", "quote_ts")
)

TIMEFRAMES: tuple[str, ...] = ("1m", "5m", "1d")

# Quotes: one row per symbol the provider answered for, keyed by the symbol it echoed
# (canonical spelling; the raw text where it is no ticker, for validation to reject).
# `last` is the last trade, `prev_close` the previous session's close, `volume` the session's
# shares so far; `quote_ts` (tz-aware UTC) is when the provider last updated the quote.
QUOTE_COLUMNS: tuple[str, ...] = (
    "symbol",
    "last",
    "bid",
    "ask",
    "volume",
    "prev_close",
    "quote_ts",
    "provider",
)


def canonical(data: pd.DataFrame | Mapping[str, Any], columns: tuple[str, ...]) -> pd.DataFrame:
    """Select and order the canonical columns, adding missing ones as NaN, rows numbered 0..n-1.

    A missing column becomes NaN rather than an exception so that validation can reject the
    affected rows with a reason instead of the whole symbol failing. A parser that assembles
    its columns itself passes them as a mapping (column -> values, a scalar filling every
    row): the frame is then built once, in canonical order; building it and then reindexing
    it cost a Schwab chain half its frame time again, per chain of every scan.
    """
    if isinstance(data, pd.DataFrame):
        out = data.reindex(columns=list(columns))
    else:
        out = pd.DataFrame({name: data.get(name, np.nan) for name in columns})
    numbered = isinstance(out.index, pd.RangeIndex) and out.index.start == 0
    return out if numbered and out.index.step == 1 else out.reset_index(drop=True)


@dataclass(frozen=True)
class CompanyProfile:
    """Reference data for one symbol (sector enrichment of the constituents table)."""

    symbol: str
    name: str | None
    sector: str | None
    sub_industry: str | None


@dataclass(frozen=True)
class ChainFilter:
    """The part of a chain a caller needs: one side and/or expirations in a date range.

    Providers hand it to their API where it has the parameters (Schwab `contractType`,
    `fromDate`, `toDate`; Polygon `contract_type`, `expiration_date.gte/.lte`; Yahoo by asking
    only for the expirations in range), so a wheel scan that uses the puts of one expiration
    receives and parses a few dozen contracts instead of every listed one (~400 here, thousands
    for an index ETF), and on Yahoo or Polygon spends one or two requests instead of twenty.
    It is a floor, not an exact cut: a source returns at least every matching contract and may
    return more, so a caller still selects what it uses.
    """

    right: Literal["C", "P"] | None = None
    expires_from: date | None = None
    expires_to: date | None = None

    def __post_init__(self) -> None:
        if self.right not in (None, "C", "P"):
            raise ValueError(f"right must be 'C', 'P' or None, got {self.right!r}")
        if self.expires_from and self.expires_to and self.expires_from > self.expires_to:
            raise ValueError(f"empty expiration range {self.expires_from}..{self.expires_to}")

    def covers(self, expiration: object) -> bool:
        """Whether contracts expiring on `expiration` are wanted; with a range set, a value that
        is no date is not."""
        if self.expires_from is None and self.expires_to is None:
            return True
        if isinstance(expiration, datetime):
            expiration = expiration.date()
        if not isinstance(expiration, date):
            return False
        after_start = self.expires_from is None or expiration >= self.expires_from
        return after_start and (self.expires_to is None or expiration <= self.expires_to)

    def apply(self, chain: pd.DataFrame) -> pd.DataFrame:
        """The matching rows of a canonical chain: the cut for sources that hold the whole
        chain, and the test of whether an answer holds anything that was asked for."""
        keep = np.fromiter(map(self.covers, chain["expiration"]), bool, len(chain))
        if self.right is not None:
            keep &= chain["right"].to_numpy(dtype=object) == self.right
        return chain if keep.all() else chain[keep].reset_index(drop=True)


# Every contract: what a caller that passes no filter asks for.
WHOLE_CHAIN = ChainFilter()


@runtime_checkable
class ChainSource(Protocol):
    """Something that can return one symbol's option chain as a canonical frame."""

    name: str

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        """The listed contracts for `symbol` that `only` asks for (at least those, see
        `ChainFilter`); `as_of` (UTC) matters to the simulated market and the sandbox; live
        providers return their current chain and stamp `quote_ts`."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BarSource(Protocol):
    """Something that can return bars for one symbol over a half-open UTC interval."""

    name: str

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """Bars with `start <= ts < end`, `ts` being the bar's start, tz-aware UTC."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class BatchBarSource(Protocol):
    """Something that can return bars for many symbols over one window in one request."""

    name: str
    # The most symbols one request may carry (URL length, the provider's documented cap).
    max_bar_batch: int

    async def bars_many(
        self, symbols: Sequence[str], timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """`BAR_COLUMNS` bars of `symbols` (at most `max_bar_batch`) with `start <= ts < end`;
        a symbol without bars in the window is simply absent."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class QuoteSource(Protocol):
    """Something that can return the latest quotes of many symbols in one request."""

    name: str
    # The most symbols one request may carry (URL length, the provider's documented cap).
    max_quote_batch: int

    async def quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        """A `QUOTE_COLUMNS` frame for `symbols` (at most `max_quote_batch`); a symbol the
        provider does not know is simply absent. `as_of` (UTC) matters to the simulated
        market only; live providers return their current quotes."""
        ...

    async def aclose(self) -> None: ...


def quote_symbol(raw: object) -> str:
    """The canonical spelling of a symbol a quote answer is keyed by, else its raw text (cut
    to 24 characters) for validation to reject: the row is counted, not dropped unseen."""
    try:
        return normalize_symbol(str(raw))
    except InvalidSymbol:
        return str(raw)[:24]


async def batch_quotes(source: object, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
    """`source.quotes(...)`, or `not_found` for a source without a batch quote endpoint: a
    fallback chain then moves on without counting it against the provider's health."""
    if not isinstance(source, QuoteSource):
        raise ProviderError(
            ErrorCategory.NOT_FOUND,
            "no batch quote endpoint",
            provider=str(getattr(source, "name", "")),
        )
    return await source.quotes(symbols, as_of)


async def batch_bars(
    source: object, symbols: Sequence[str], timeframe: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """`source.bars_many(...)`, or `not_found` for a source without a multi-symbol bars
    endpoint: a fallback chain then moves on without counting it against the provider's health."""
    if not isinstance(source, BatchBarSource):
        raise ProviderError(
            ErrorCategory.NOT_FOUND,
            "no multi-symbol bars endpoint",
            provider=str(getattr(source, "name", "")),
        )
    return await source.bars_many(symbols, timeframe, start, end)


def aggregate_bars(
    minutes: pd.DataFrame,
    bucket: pd.Series,
    *,
    symbol: str,
    timeframe: str,
    provider: str | np.ndarray,
) -> pd.DataFrame:
    """Coarser canonical bars from 1-minute bars grouped by `bucket` (each group's start);
    `provider` is one name, or one per bucket in bucket order.

    The one definition of OHLCV aggregation (first open, max high, min low, last close, summed
    volume), shared by the simulated market, providers that only serve 1m bars, and the 5m bars
    rebuilt from stored minutes, so that every 5m and 1d bar agrees with its minutes.
    """
    out = (
        minutes.groupby(bucket, sort=True)
        .agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        .reset_index(names="ts")
    )
    return canonical(out.assign(symbol=symbol, timeframe=timeframe, provider=provider), BAR_COLUMNS)
