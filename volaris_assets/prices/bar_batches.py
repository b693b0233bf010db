"""Per-symbol bar fetches answered by multi-symbol requests.

The fan-out stays per symbol (an outcome row each, one transaction each, the retry sensor), but
when the chain's primary has a multi-symbol bars endpoint (Alpaca), the symbols that share a
window are asked for together. 518 symbols' last five minutes then take 6 requests instead of
518: at Alpaca's 200/min that is the difference between an intraday run of seconds and one that
holds the small box's only run slot for 2.7 minutes of every 5, with the 60-s quotes queued
behind it.

A batch is one request: its answer is split by symbol, and each symbol's share is that symbol's
fetch. A symbol the answer leaves out (no trades in the window), or every symbol of a batch that
came back empty, is asked for alone through the chain, as it would have been without batching,
so that it gets the outcome it always did (another provider of the chain may have its bars).
A batch every provider fails is the failure of each of its symbols, with the batch's category:
the retry sensor then retries them on the fallback, where a lone symbol can still be asked for.
The requests a batch took are counted once, on the first symbol that collects the answer, so
the run's requests per provider stay what the provider saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

import pandas as pd

from volaris_assets.providers.base import ErrorCategory, ProviderError
from volaris_assets.providers.resilience import FallbackChain, Fetched


class BatchFailed(ProviderError):
    """A symbol's share of a failed batch (`attempts` is the batch's for the first symbol that
    reports it, 0 for the others)."""

    def __init__(self, error: ProviderError, size: int, attempts: int) -> None:
        super().__init__(
            error.category,
            f"batch of {size} symbols failed: {error.args[0]}",
            provider=error.provider,
            retry_after=error.retry_after,
        )
        self.attempts = attempts


@dataclass(eq=False)
class _Batch:
    symbols: tuple[str, ...]
    start: datetime
    task: asyncio.Task[Fetched] | None = None
    waiters: int = 0
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)
    attempts_counted: bool = False

    def attempts(self, total: int) -> int:
        """`total` for the first caller, 0 after: the batch's requests are counted once."""
        counted, self.attempts_counted = self.attempts_counted, True
        return 0 if counted else total


class BarBatches:
    """Bars of many symbols, each with its own window start, fetched per symbol by the fan-out
    (`fetch`) but requested in batches of the symbols that share a start."""

    def __init__(self, timeframe: str, starts: Mapping[str, datetime], end: datetime) -> None:
        self._timeframe = timeframe
        self._starts = dict(starts)
        self._end = end
        self._batch_of: dict[str, _Batch] = {}

    async def fetch(self, chain: FallbackChain, symbol: str) -> Fetched:
        size = chain.bar_batch_size
        if not size:
            return await self._alone(chain, symbol)
        batch = self._batch(symbol, size)
        try:
            fetched = await self._answer(chain, batch)
        except ProviderError as error:
            spent = batch.attempts(int(getattr(error, "attempts", 1)))
            if error.category is ErrorCategory.NO_DATA:  # no symbol of it had a bar
                return await self._alone(chain, symbol, spent)
            raise BatchFailed(error, len(batch.symbols), spent) from error
        frame = batch.frames.pop(symbol, None)
        if frame is None:
            return await self._alone(chain, symbol, batch.attempts(fetched.attempts))
        return Fetched(
            frame=frame,
            provider=fetched.provider,
            attempts=batch.attempts(fetched.attempts),
            failures=fetched.failures,
        )

    async def _alone(self, chain: FallbackChain, symbol: str, spent: int = 0) -> Fetched:
        """The symbol asked for by itself, as without batching; `spent` is what its batch took
        and is not yet counted."""
        try:
            fetched = await chain.bars(symbol, self._timeframe, self._starts[symbol], self._end)
        except ProviderError as error:
            error.attempts = int(getattr(error, "attempts", 1)) + spent  # type: ignore[attr-defined]
            raise
        return replace(fetched, attempts=fetched.attempts + spent)

    def _batch(self, symbol: str, size: int) -> _Batch:
        """The batch holding `symbol`; the batches are cut on the first call, in the order of
        `starts`, so that the fan-out's first workers share the first request."""
        if not self._batch_of:
            by_start: dict[datetime, list[str]] = {}
            for name, start in self._starts.items():
                by_start.setdefault(start, []).append(name)
            for start, names in by_start.items():
                for first in range(0, len(names), size):
                    batch = _Batch(tuple(names[first : first + size]), start)
                    self._batch_of.update(dict.fromkeys(batch.symbols, batch))
        return self._batch_of[symbol]

    async def _answer(self, chain: FallbackChain, batch: _Batch) -> Fetched:
        """The batch's one request, shared by its symbols: whoever asks first sends it, the
        others wait for it; it is cancelled only when every symbol waiting on it is."""
        if batch.task is None:
            batch.task = asyncio.create_task(self._request(chain, batch))
        batch.waiters += 1
        try:
            return await asyncio.shield(batch.task)
        except asyncio.CancelledError:
            if batch.waiters == 1:
                batch.task.cancel()
            raise
        finally:
            batch.waiters -= 1

    async def _request(self, chain: FallbackChain, batch: _Batch) -> Fetched:
        fetched = await chain.bars_many(batch.symbols, self._timeframe, batch.start, self._end)
        batch.frames = {
            str(symbol): rows.reset_index(drop=True)
            for symbol, rows in fetched.frame.groupby("symbol", sort=False)
        }
        return Fetched(
            frame=fetched.frame.iloc[0:0],
            provider=fetched.provider,
            attempts=fetched.attempts,
            failures=fetched.failures,
        )
