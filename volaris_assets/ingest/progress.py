"""Progress an operator can watch while a fan-out runs, and a warning when its budget is slow.

A run paced by a small budget (Tiingo's free plan: 50 requests an hour) used to sit silent for
minutes; one that needs hours looked hung. `Progress` keeps the outcomes so far and renders them
through `RunSummary`, so the lines logged during the run and the materialization's metadata
after it are the same arithmetic; `reported` logs a line every `PROGRESS_EVERY_S`, and
`slow_run_warning` says at the start when the primary's budget alone makes the run long.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from volaris_assets.ingest.background import alongside
from volaris_assets.ingest.fanout import SymbolOutcome
from volaris_assets.ingest.summary import RunSummary
from volaris_assets.providers.rate_limit import PACING_HEADROOM, Clock, RateLimit

PROGRESS_EVERY_S = 10.0
# A run whose budget alone needs longer than this says so when it starts.
SLOW_RUN_S = 180.0
# (unit, seconds) from the shortest: a rate is shown in the first unit in which it reaches 1.
RATE_UNITS: tuple[tuple[str, float], ...] = (("s", 1.0), ("min", 60.0), ("h", 3600.0))


class Progress:
    """A fan-out's outcomes so far, against the clock (`time.monotonic` unless a test's)."""

    def __init__(self, total: int, clock: Clock = time.monotonic) -> None:
        self.total = total
        self._clock = clock
        self._started = clock()
        self._outcomes: list[SymbolOutcome] = []

    def record(self, outcome: SymbolOutcome) -> None:
        """The fan-out's `on_outcome`: one call per symbol settled."""
        self._outcomes.append(outcome)

    @property
    def elapsed_s(self) -> float:
        return self._clock() - self._started

    def summary(self) -> RunSummary:
        return RunSummary(list(self._outcomes), self.elapsed_s)

    def line(self) -> str:
        return progress_line(self.summary(), self.total)


def progress_line(summary: RunSummary, total: int) -> str:
    """E.g. "120/503 symbols, 11.9/s, ETA 32 s, failed {'timeout': 2}, requests {'schwab': 130}";
    a finished run says how long it took instead of an ETA."""
    done, rate = len(summary.outcomes), summary.symbols_per_s
    if done >= total:
        timing = f"in {duration_text(summary.duration_s)}"
    elif rate > 0:
        timing = f"ETA {duration_text((total - done) / rate)}"
    else:
        timing = "ETA unknown"
    return (
        f"{done}/{total} symbols, {rate_text(rate)}, {timing}, "
        f"failed {summary.failures_by_category()}, requests {summary.requests_by_provider()}"
    )


@contextlib.asynccontextmanager
async def reported(
    progress: Progress, log: Callable[[str], None], every_s: float = PROGRESS_EVERY_S
) -> AsyncIterator[None]:
    """Log `progress.line()` every `every_s` while the block runs.

    A timer rather than a line per outcome: under a slow budget outcomes arrive a minute and
    more apart, and that silence is what made a paced run look hung.
    """

    async def tick() -> None:
        while True:
            await asyncio.sleep(every_s)
            log(progress.line())

    async with alongside(tick()):
        yield


def budget_time_s(requests: int, limit: RateLimit) -> float:
    """Seconds `requests` take within `limit`: the burst at once, the rest at the bucket's pace.

    A lower bound: retries, pages and other runs spending the same budget only add to it. An
    unlimited budget (infinite rate and burst) comes out as 0.
    """
    return max(0.0, requests - limit.burst) / (limit.per_second * PACING_HEADROOM)


def slow_run_warning(label: str, symbols: int, provider: str, limit: RateLimit) -> str | None:
    """What to say at the start of a run that `provider`'s budget alone (one request per symbol)
    holds for more than SLOW_RUN_S, or None; the run goes ahead either way."""
    needed_s = budget_time_s(symbols, limit)
    if needed_s <= SLOW_RUN_S:
        return None
    return (
        f"{label}: {symbols} symbols at {provider}'s budget of "
        f"{rate_text(limit.per_second, 'requests')}: about {duration_text(needed_s)}; set "
        f"VOLARIS_RATE_LIMITS={provider}=<requests>/<seconds> for your plan or put a faster "
        "provider first"
    )


def rate_text(per_second: float, what: str = "") -> str:
    """'11.9/s', '0.83/min', '50 requests/h': in the first unit where the figure reaches 1."""
    unit, seconds = next(
        ((u, s) for u, s in RATE_UNITS if per_second * s >= 1 or per_second == 0), RATE_UNITS[-1]
    )
    value = per_second * seconds
    figure = f"{value:.3g}" if value < 1000 else f"{value:.0f}"
    return f"{figure} {what}/{unit}" if what else f"{figure}/{unit}"


def duration_text(seconds: float) -> str:
    """'4.2 s', '32 s', '5 min', '2.5 h', '10 h': as precise as a person reads an estimate."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    hours = seconds / 3600
    return f"{hours:.1f} h" if hours < 10 else f"{hours:.0f} h"
