"""Retry, circuit breaking and provider fallback around the provider sources.

The system this replaces lost 72% of a 1,205-symbol scan to throttling and timeouts because
nothing retried and nothing fell back. Here every request to a provider goes through a
`GuardedSource` (circuit breaker, then token bucket, then the request, retried with exponential
backoff and jitter for transient categories only) and a `FallbackChain` asks the providers in
order until one answers. Limiters and breakers come from a `ResilienceRegistry`, one per provider
name, so all chains in a process share a provider's budget and its health.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Self

import pandas as pd
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_base

from volaris_assets.providers.answer_times import AnswerTimes
from volaris_assets.providers.base import (
    WHOLE_CHAIN,
    BarSource,
    ChainFilter,
    ChainSource,
    ErrorCategory,
    ProviderError,
    batch_bars,
    batch_quotes,
)
from volaris_assets.providers.circuit import HEALTH_CATEGORIES, CircuitBreaker, CircuitState
from volaris_assets.providers.http import paced_follow_ups
from volaris_assets.providers.live_chains import current_chain, past_chain
from volaris_assets.providers.rate_limit import (
    DEFAULT_RATE_LIMITS,
    PACING_HEADROOM,
    Clock,
    Limiter,
    Paused,
    RateLimit,
    Sleep,
    TokenBucket,
)
from volaris_assets.symbols import serves

if TYPE_CHECKING:
    from volaris_assets.providers.budget import Limit, Priority, ProviderBudget

__all__ = [
    "DEFAULT_HEDGE_AFTER_S",
    "DEFAULT_RATE_LIMITS",
    "HEALTH_CATEGORIES",
    "BackoffWait",
    "ChainExhausted",
    "CircuitBreaker",
    "CircuitState",
    "FallbackChain",
    "Fetched",
    "GuardedSource",
    "RateLimit",
    "ResilienceRegistry",
    "RetrySettings",
    "SourceFailed",
    "TokenBucket",
]

logger = logging.getLogger(__name__)

Source = ChainSource | BarSource
# One request against a source, e.g. `lambda source: source.option_chain(symbol, as_of)`.
Fetch = Callable[[Any], Awaitable[pd.DataFrame]]
# Why a source is not to be asked at all (e.g. `live_chains.past_chain`), or None.
Refuse = Callable[[Any], ProviderError | None]
Random = Callable[[], float]

# Providers whose requests cost nothing but quota, and how long one may go unanswered before it
# is hedged (see `GuardedSource._answer`) at the latest: several times a chain's usual answer
# time (under a second), far below the 10 s read timeout a hung request otherwise runs into;
# sooner once the provider's own recent answers say what usual is (answer_times.py).
# Databento bills per request and the simulated market never hangs: neither is here.
DEFAULT_HEDGE_AFTER_S: dict[str, float] = {"schwab": 2.0}
# How often a hung request looks for a spare token to hedge it with: at the end of a paced run
# tokens free up all at once, and a hedge sent a quarter-second late is a quarter-second of
# tail.
HEDGE_POLL_S = 0.25
# A 429 without Retry-After still means "slow down": everyone holds back this long.
DEFAULT_429_PAUSE_S = 1.0
# The longest pause a Retry-After sets (a day: a daily quota's reset). A longer one (a date in
# 9999, say) would stop the provider in every process until someone cleared the store by hand.
LONGEST_PAUSE_S = 86_400.0
# What a parser raises on an answer of an unexpected shape (a list where a string was, a date
# past 2262, an integer past a float): the answer was bad, not the provider's health.
UNREADABLE = (ValueError, TypeError, LookupError, ArithmeticError, AttributeError)


@dataclass(frozen=True)
class RetrySettings:
    """How hard to try one provider before the chain moves on.

    With the defaults the waits after failures 1-4 are 0.1, 0.2, 0.4 and 0.8 s, each plus
    random jitter of up to as much again (at most `jitter_s`) so that symbols failing together
    do not retry together. The schedule is short because it only has to space out retries: the
    budget already keeps every request, retries included, within the provider's limit (a retry
    sent sooner takes the same slot of the same pace, it adds no load), and a provider in real
    trouble opens the circuit breaker, which holds everyone back for its cooldown. What a
    longer wait does is hold the symbol: the seed's 2, 4, 8, 16 s made the last symbols of a
    paced scan wait out their backoffs with the budget idle, a third of a 100 requests/s
    scan's wall time; 0.5, 1, 2, 4 s still left a ~2-s tail behind one unlucky symbol of
    bench_scan's R = 100 run (0.79-0.82 of the ceiling; 0.87 with 0.1 s). A
    `Retry-After` longer than `retry_after_cap_s` (Tiingo's hourly quota says "come back in an
    hour") ends the retries: the next provider is a better bet than a stalled run.
    `attempt_timeout_s` bounds one request end to end, as a backstop to the HTTP client's own
    per-operation timeouts, which a slowly trickling response can stay within.
    """

    attempts: int = 5
    base_s: float = 0.1
    max_s: float = 16.0
    jitter_s: float = 1.0
    retry_after_cap_s: float = 60.0
    attempt_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be >= 1, got {self.attempts}")
        if min(self.base_s, self.max_s, self.jitter_s, self.retry_after_cap_s) < 0:
            raise ValueError("waits must be >= 0")

    def backoff_s(self, failures: int) -> float:
        """The wait after the `failures`-th consecutive failure, before jitter."""
        return min(self.max_s, self.base_s * 2 ** (failures - 1))


class BackoffWait(wait_base):
    """Tenacity wait: max(Retry-After, exponential backoff) plus jitter.

    Jitter is up to the wait itself, capped at `jitter_s`: a fixed second of jitter would
    make a 0.1-s backoff up to eleven times as long. It is added on top of Retry-After too, so
    the wait is never shorter than the provider asked for and a crowd told the same
    Retry-After does not come back in one instant.
    """

    def __init__(self, settings: RetrySettings, rng: Random = random.random) -> None:
        self.settings = settings
        self._rng = rng

    def __call__(self, retry_state: RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        retry_after = getattr(error, "retry_after", None) or 0.0
        wait = max(retry_after, self.settings.backoff_s(retry_state.attempt_number))
        return wait + min(self.settings.jitter_s, wait) * self._rng()


class SourceFailed(ProviderError):
    """One provider's final error for one request, with the number of requests it took."""

    def __init__(self, error: ProviderError, *, provider: str, attempts: int) -> None:
        super().__init__(
            error.category, error.args[0], provider=provider, retry_after=error.retry_after
        )
        self.attempts = attempts


class GuardedSource:
    """A source behind its provider's circuit breaker and token bucket, with retries.

    Each attempt asks the breaker first (an open circuit fails at once with `circuit_open` and
    sends nothing), then waits for a token, asks again (the circuit may have opened during the
    wait), then makes the request, hedged when `hedge_after_s` is set (see `_answer`).
    `attempts` counts requests actually sent, hedges included. Retries happen only for
    RETRYABLE_CATEGORIES and stop early when the circuit has opened meanwhile. Whatever the
    source raises comes out as a ProviderError whose message holds no exception text (an httpx
    error's text can hold a URL with an API key in it).
    """

    def __init__(
        self,
        source: Source,
        limiter: Limiter,
        breaker: CircuitBreaker,
        retry: RetrySettings | None = None,
        *,
        hedge_after_s: float | None = None,
        answer_times: AnswerTimes | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Random = random.random,
    ) -> None:
        if hedge_after_s is not None and not hedge_after_s > 0:
            raise ValueError(f"hedge_after_s must be > 0, got {hedge_after_s}")
        self.source = source
        self.limiter = limiter
        self.breaker = breaker
        self.retry = retry or RetrySettings()
        self.hedge_after_s = hedge_after_s
        self.answer_times = answer_times
        self._sleep = sleep
        self._rng = rng

    @property
    def name(self) -> str:
        return self.source.name

    async def call(self, fetch: Fetch) -> tuple[pd.DataFrame, int]:
        """Return a non-empty frame and the requests it took, or raise SourceFailed."""
        attempts = 0
        last_answer: ProviderError | None = None

        def hedged() -> None:
            nonlocal attempts
            attempts += 1

        async def attempt() -> pd.DataFrame:
            nonlocal attempts, last_answer
            if not self.breaker.allow():
                raise ProviderError(
                    ErrorCategory.CIRCUIT_OPEN, "circuit open, request not sent", provider=self.name
                )
            try:
                await self.limiter.acquire(longest_pause_s=self.retry.retry_after_cap_s)
            except Paused as paused:
                raise ProviderError(
                    ErrorCategory.RATE_LIMITED,
                    f"request not sent: {paused}",
                    provider=self.name,
                    retry_after=paused.seconds,
                ) from None
            if self.breaker.state is CircuitState.OPEN:
                # Opened while this request waited for its turn (behind a slow budget, for
                # seconds): the requests ahead of it failed, and its slot is spent either way.
                raise ProviderError(
                    ErrorCategory.CIRCUIT_OPEN,
                    "circuit opened while the request waited for its turn, request not sent",
                    provider=self.name,
                )
            attempts += 1
            try:
                return await self._answer(fetch, hedged)
            except ProviderError as error:
                last_answer = error
                raise

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.attempts),
            wait=BackoffWait(self.retry, self._rng),
            retry=retry_if_exception(self._worth_retrying),
            sleep=self._sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return await retrying(attempt), attempts
        except ProviderError as error:
            # A circuit that opened during a backoff sleep says less than what this provider
            # last answered for this very request.
            circuit_opened = error.category is ErrorCategory.CIRCUIT_OPEN
            final = last_answer if circuit_opened and last_answer is not None else error
            raise SourceFailed(final, provider=self.name, attempts=attempts) from error

    async def aclose(self) -> None:
        await self.source.aclose()

    async def _answer(self, fetch: Fetch, hedged: Callable[[], None]) -> pd.DataFrame:
        """One attempt's answer: its request, and a hedge of it when that request hangs.

        A request taken for hung (by the provider's recent answers, `answer_times.py`) is sent
        once more as soon as the budget has a token nobody is waiting for (`Limiter.spare`,
        looked at every HEDGE_POLL_S) and the circuit is closed: budget that would go unused,
        which in a paced run means its end, where a hung request (held until the HTTP read
        timeout, 10 s) would otherwise be what the whole run waits for. Still unanswered after
        `hedge_after_s`, it takes a queued turn for its hedge instead (`_hedge_when_hung`):
        no dearer than the retry its read timeout would bring.

        Once hedged, the hedge settles the attempt: the first success of either wins, and a
        failure of the hedge fails the attempt at once (the retry that follows is a fresh
        request; waiting on for the hung one would only hold the symbol until its timeout).
        The hung request failing first leaves the hedge to answer. Every answer reaches the
        breaker; a request cancelled unanswered says nothing about the provider.
        """
        if self.hedge_after_s is None:
            return await self._recorded(fetch)
        request = asyncio.ensure_future(self._recorded(fetch))
        hedge: asyncio.Future[pd.DataFrame] | None = None
        try:
            latest_s = self.hedge_after_s
            after_s = self.answer_times.hedge_after(latest_s) if self.answer_times else latest_s
            hedge = await self._hedge_when_hung(request, fetch, hedged, after_s, latest_s)
            if hedge is None:
                return await request
            done, _ = await asyncio.wait({request, hedge}, return_when=asyncio.FIRST_COMPLETED)
            if request in done and request.exception() is None:
                return request.result()
            return await hedge
        finally:
            pending = [r for r in (request, hedge) if r is not None and not r.done()]
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _hedge_when_hung(
        self,
        request: asyncio.Future[pd.DataFrame],
        fetch: Fetch,
        hedged: Callable[[], None],
        after_s: float,
        latest_s: float,
    ) -> asyncio.Future[pd.DataFrame] | None:
        """The hedge of `request`, or None when `request` answers first.

        From `after_s` unanswered on, the hedge goes as soon as a spare token turns up. From
        `latest_s` (the configured delay) on, it also takes a turn in the queue like any
        request: a run that spends its whole budget has no spare token until its queue drains
        at the end, and a request hung early in it would otherwise hold its symbol until then
        (bench_scan at R = 100: hung requests of the first seconds answered 7-9 s later, with
        the last of the queue). Either way, only while the circuit is closed.
        """
        loop = asyncio.get_running_loop()
        queue_from = loop.time() + latest_s
        done, _ = await asyncio.wait({request}, timeout=after_s)
        while not done:
            if self.breaker.state is CircuitState.CLOSED:
                if await self.limiter.spare():
                    hedged()
                    return asyncio.ensure_future(self._recorded(fetch))
                if loop.time() >= queue_from:
                    return await self._hedge_in_turn(request, fetch, hedged)
            done, _ = await asyncio.wait({request}, timeout=min(after_s, HEDGE_POLL_S))
        return None

    async def _hedge_in_turn(
        self, request: asyncio.Future[pd.DataFrame], fetch: Fetch, hedged: Callable[[], None]
    ) -> asyncio.Future[pd.DataFrame] | None:
        """The hedge of `request` once a queued turn comes, or None when `request` answers
        first (the turn, if already reserved, then goes unused) or the circuit has opened."""
        turn = asyncio.ensure_future(self.limiter.acquire())
        try:
            await asyncio.wait({request, turn}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not turn.done():
                turn.cancel()
                await asyncio.gather(turn, return_exceptions=True)
        if request.done() or turn.cancelled() or turn.exception() is not None:
            return None
        if self.breaker.state is not CircuitState.CLOSED:
            return None
        hedged()
        return asyncio.ensure_future(self._recorded(fetch))

    async def _recorded(self, fetch: Fetch) -> pd.DataFrame:
        """One request, its outcome reported to the breaker; a 429 pauses the whole budget
        (every request of every process sharing it) for the advised time, since the provider
        counts the account, not this request."""
        sent = time.monotonic()
        try:
            frame = await self._request(fetch)
        except ProviderError as error:
            self.breaker.record_failure(error.category)
            if error.category is ErrorCategory.RATE_LIMITED:
                advised = error.retry_after
                pause = DEFAULT_429_PAUSE_S if advised is None else min(advised, LONGEST_PAUSE_S)
                await self.limiter.pause(pause)
            raise
        self.breaker.record_success()
        if self.answer_times is not None:
            self.answer_times.record(time.monotonic() - sent)
        return frame

    async def _request(self, fetch: Fetch) -> pd.DataFrame:
        """One call to the source; its first request was paid for by the caller, and any
        further ones (pages, one per expiration) each wait for a turn of the budget. That wait
        is not the provider's time: the attempt's timeout is moved on by it (at Polygon's
        default 5 a minute a chain's second page waits 12 s, longer than a request may take,
        and every such chain failed as a timeout and counted towards opening the circuit)."""
        try:
            async with asyncio.timeout(self.retry.attempt_timeout_s) as deadline:

                async def acquire_off_the_clock() -> None:
                    loop = asyncio.get_running_loop()
                    when = deadline.when()
                    left = None if when is None else when - loop.time()
                    deadline.reschedule(None)  # stopped while the budget is waited for
                    try:
                        await self.limiter.acquire()
                    finally:
                        deadline.reschedule(None if left is None else loop.time() + left)

                with paced_follow_ups(acquire_off_the_clock):
                    frame = await fetch(self.source)
        except ProviderError:
            raise
        except TimeoutError:
            raise ProviderError(
                ErrorCategory.TIMEOUT, "request timed out", provider=self.name
            ) from None
        except UNREADABLE as error:
            # The provider answered (transport failures arrive as ProviderError), and a parser
            # could not read it: the symbol's data is bad, and the provider's health is not in
            # question, so it must not count towards opening the circuit.
            raise ProviderError(
                ErrorCategory.BAD_DATA,
                f"unreadable answer ({type(error).__name__})",
                provider=self.name,
            ) from None
        except Exception as error:  # noqa: BLE001 - every source failure gets a category
            raise ProviderError(
                ErrorCategory.UNKNOWN, f"unexpected {type(error).__name__}", provider=self.name
            ) from None
        return self._checked(frame)

    def _checked(self, frame: object) -> pd.DataFrame:
        """An empty frame is `no_data`: it moves the chain on like any other failure."""
        if not isinstance(frame, pd.DataFrame):
            raise ProviderError(
                ErrorCategory.BAD_DATA,
                f"source returned {type(frame).__name__}, not a DataFrame",
                provider=self.name,
            )
        if frame.empty:
            raise ProviderError(ErrorCategory.NO_DATA, "no rows", provider=self.name)
        return frame

    def _worth_retrying(self, error: BaseException) -> bool:
        return (
            isinstance(error, ProviderError)
            and error.retryable
            and (error.retry_after is None or error.retry_after <= self.retry.retry_after_cap_s)
            and self.breaker.state is not CircuitState.OPEN
        )

    def _log_retry(self, retry_state: RetryCallState) -> None:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        category = error.category.value if isinstance(error, ProviderError) else "unknown"
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        logger.info(
            "%s: %s on attempt %d of %d, retrying in %.1f s",
            self.name,
            category,
            retry_state.attempt_number,
            self.retry.attempts,
            wait,
        )


@dataclass(frozen=True, eq=False)
class Fetched:
    """A frame and where it came from: what `sync_stock_results` records per symbol.

    `attempts` counts every request sent for this fetch, over all providers tried; `failures`
    lists the providers that failed before `provider` answered, in the order they were tried.
    """

    frame: pd.DataFrame
    provider: str
    attempts: int
    failures: tuple[tuple[str, ErrorCategory], ...] = ()


class ChainExhausted(ProviderError):
    """Every provider in the chain failed for one request.

    The category is that of the first provider, in chain order, that actually answered, i.e.
    whose failure is not `circuit_open`: normally the primary's, and a later provider's only
    when the primary's circuit was open and so said nothing about this symbol. It is
    `circuit_open` only when every circuit was open. `provider` names the provider whose
    category was chosen, `attempts` totals the requests sent and `failures` keeps every
    provider's (name, category) in chain order.
    """

    def __init__(self, errors: Sequence[SourceFailed]) -> None:
        if not errors:
            raise ValueError("ChainExhausted needs at least one provider's error")
        chosen = next(
            (e for e in errors if e.category is not ErrorCategory.CIRCUIT_OPEN), errors[0]
        )
        detail = "; ".join(f"{e.provider}={e.category.value} ({e.args[0]})" for e in errors)
        super().__init__(
            chosen.category,
            f"all {len(errors)} providers failed: {detail}",
            provider=chosen.provider,
            retry_after=chosen.retry_after,
        )
        self.attempts = sum(e.attempts for e in errors)
        self.failures = tuple((e.provider, e.category) for e in errors)


class FallbackChain:
    """Ask each provider in turn (primary first) until one returns a non-empty frame.

    A provider is left behind after any failure the guard gives up on: a permanent one for this
    symbol, retries exhausted, or an open circuit. The chain owns its sources: `aclose` closes
    them, and a `rotated` copy shares them (close only one of the two).
    """

    def __init__(self, guarded_sources: Sequence[GuardedSource]) -> None:
        names = [guarded.name for guarded in guarded_sources]
        if not names:
            raise ValueError("a fallback chain needs at least one source")
        if len(set(names)) != len(names):
            raise ValueError(f"provider named twice in chain: {names}")
        self._sources = tuple(guarded_sources)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(guarded.name for guarded in self._sources)

    @classmethod
    def of(cls, chain: FallbackChain) -> Self:
        """`chain`'s guarded sources as a chain of this kind (one asked for past chains, or
        for profiles), sharing them: close only `chain`."""
        return chain if isinstance(chain, cls) else cls(chain._sources)

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> Fetched:
        return await self._first_answer(
            lambda source: current_chain(source, symbol, as_of, only),
            refuse=lambda source: past_chain(source, as_of) or index_refusal(source, symbol),
        )

    async def bars(self, symbol: str, timeframe: str, start: datetime, end: datetime) -> Fetched:
        return await self._first_answer(
            lambda source: source.bars(symbol, timeframe, start, end),
            refuse=lambda source: index_refusal(source, symbol),
        )

    async def bars_many(
        self, symbols: Sequence[str], timeframe: str, start: datetime, end: datetime
    ) -> Fetched:
        """One multi-symbol bars request from the first provider that answers; a provider
        without that endpoint is passed over as `not_found`, and one that serves no index is
        not asked for the batch's indexes (they come back as not returned)."""
        return await self._first_answer(
            lambda source: batch_bars(source, served(source, symbols), timeframe, start, end),
            refuse=lambda source: batch_refusal(source, symbols),
        )

    @property
    def bar_batch_size(self) -> int | None:
        """How many symbols one bars request may carry when the primary has a multi-symbol
        endpoint, else None: batching must not move a symbol off the provider asked first."""
        return getattr(self._sources[0].source, "max_bar_batch", None)

    async def quotes(self, symbols: Sequence[str], as_of: datetime) -> Fetched:
        """One batch of quotes (one request) from the first provider that answers; a provider
        without a batch quote endpoint is passed over as `not_found`."""
        return await self._first_answer(
            lambda source: batch_quotes(source, served(source, symbols), as_of),
            refuse=lambda source: batch_refusal(source, symbols),
        )

    def rotated(self, start_with: str | None) -> FallbackChain:
        """A copy whose order starts at `start_with` and wraps around (None keeps the order).

        The retry sensor uses it to try a failed symbol on the fallback first; rotating rather
        than moving one provider to the front puts the provider that just failed last.
        """
        if start_with is None:
            return FallbackChain(self._sources)
        try:
            index = self.providers.index(start_with)
        except ValueError:
            raise ValueError(
                f"provider {start_with!r} is not in the chain {self.providers}"
            ) from None
        return FallbackChain(self._sources[index:] + self._sources[:index])

    async def aclose(self) -> None:
        """Close every source, even when one fails to close; the first such error is re-raised."""
        first_error: Exception | None = None
        for guarded in self._sources:
            try:
                await guarded.aclose()
            except Exception as error:  # noqa: BLE001 - keep closing the others
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    async def _first_answer(self, fetch: Fetch, refuse: Refuse | None = None) -> Fetched:
        """The first source's answer that is not a failure; `refuse` names, before anything is
        sent or reserved, a source that cannot answer this fetch."""
        errors: list[SourceFailed] = []
        for guarded in self._sources:
            if refuse is not None and (refused := refuse(guarded.source)) is not None:
                errors.append(SourceFailed(refused, provider=guarded.name, attempts=0))
                continue
            try:
                frame, attempts = await guarded.call(fetch)
            except SourceFailed as error:
                errors.append(error)
                continue
            return Fetched(
                frame=frame,
                provider=guarded.name,
                attempts=attempts + sum(e.attempts for e in errors),
                failures=tuple((e.provider, e.category) for e in errors),
            )
        raise ChainExhausted(errors)


def index_refusal(source: Any, symbol: str) -> ProviderError | None:
    """`no_data` before anything is sent when `symbol` is an index `source` does not serve
    (`symbols.INDEX_PROVIDERS`): Alpaca or Tiingo would read SPX as a stock ticker."""
    name = str(getattr(source, "name", ""))
    if serves(name, symbol):
        return None
    return ProviderError(ErrorCategory.NO_DATA, f"serves no index ({symbol})", provider=name)


def served(source: Any, symbols: Sequence[str]) -> list[str]:
    """The symbols of a batch `source` may be asked for."""
    name = str(getattr(source, "name", ""))
    return [symbol for symbol in symbols if serves(name, symbol)]


def batch_refusal(source: Any, symbols: Sequence[str]) -> ProviderError | None:
    """`no_data` before anything is reserved or sent when `source` serves none of a batch's
    symbols (a batch of indexes only)."""
    if not symbols or served(source, symbols):
        return None
    name = str(getattr(source, "name", ""))
    return ProviderError(ErrorCategory.NO_DATA, "serves no index", provider=name)


class ResilienceRegistry:
    """Hands out one budget and one circuit breaker per provider name.

    Build one per process and build every chain from it, so that the option-chain and bar
    chains of a run spend the same Schwab budget and see the same Schwab outage. Buckets and
    breakers hold no event-loop objects, so they survive from one `asyncio.run` to the next.
    With a shared `budget` (`providers/budget/`), every request is reserved there instead, at
    the chain's priority, so every process spending the account paces together; without one
    (tests on fake time), each provider gets this process's token bucket.
    `rate_limits` entries replace DEFAULT_RATE_LIMITS entries of the same name; a provider with
    no budget in either is an error rather than silently unlimited. `hedge_after_s` replaces
    DEFAULT_HEDGE_AFTER_S as a whole (an empty mapping hedges nothing).
    """

    def __init__(
        self,
        rate_limits: Mapping[str, RateLimit] | None = None,
        *,
        hedge_after_s: Mapping[str, float] | None = None,
        failure_threshold: int = 5,
        cooldown_s: float = 60.0,
        retry: RetrySettings | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: Random = random.random,
        budget: ProviderBudget | None = None,
    ) -> None:
        self.rate_limits = {**DEFAULT_RATE_LIMITS, **(rate_limits or {})}
        self.budget = budget
        self.hedge_after_s = dict(DEFAULT_HEDGE_AFTER_S if hedge_after_s is None else hedge_after_s)
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.retry = retry or RetrySettings()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._limiters: dict[str, TokenBucket] = {}
        self._breakers: dict[str, CircuitBreaker] = {}
        self._answer_times: dict[str, AnswerTimes] = {}

    def limiter(self, provider: str, priority: Priority = "fresh") -> Limiter:
        if provider not in self.rate_limits:
            raise KeyError(f"no rate limit for provider {provider!r}; pass one in rate_limits")
        if self.budget is not None:
            from volaris_assets.providers.budget.limiter import BudgetLimiter

            return BudgetLimiter(self.budget, provider, priority)
        if provider not in self._limiters:
            self._limiters[provider] = self.rate_limits[provider].bucket(self._clock, self._sleep)
        return self._limiters[provider]

    def breaker(self, provider: str) -> CircuitBreaker:
        if provider not in self._breakers:
            self._breakers[provider] = CircuitBreaker(
                self.failure_threshold, self.cooldown_s, self._clock, name=provider
            )
        return self._breakers[provider]

    def answer_times(self, provider: str) -> AnswerTimes | None:
        """The provider's recent answer times, kept across guards, for hedged providers only."""
        if provider not in self.hedge_after_s:
            return None
        if provider not in self._answer_times:
            self._answer_times[provider] = AnswerTimes()
        return self._answer_times[provider]

    def guard(
        self, source: Source, retry: RetrySettings | None = None, priority: Priority = "fresh"
    ) -> GuardedSource:
        return GuardedSource(
            source,
            self.limiter(source.name, priority),
            self.breaker(source.name),
            retry or self.retry,
            hedge_after_s=self.hedge_after_s.get(source.name),
            answer_times=self.answer_times(source.name),
            sleep=self._sleep,
            rng=self._rng,
        )

    def chain(
        self,
        sources: Sequence[Source],
        retry: RetrySettings | None = None,
        priority: Priority = "fresh",
    ) -> FallbackChain:
        return FallbackChain([self.guard(source, retry, priority) for source in sources])


def budget_limits(overrides: Mapping[str, RateLimit]) -> dict[str, Limit]:
    """The shared budget's paces: every provider's budget (DEFAULT_RATE_LIMITS, replaced by
    `overrides` of the same name, as `ResilienceRegistry` does) at PACING_HEADROOM, as a
    bucket paces (see there for why not 100%), each with the lateness its window absorbs."""
    from volaris_assets.providers.budget import Limit

    return {
        name: Limit(limit.per_second * PACING_HEADROOM, max(1.0, limit.burst), limit.late_send_s)
        for name, limit in {**DEFAULT_RATE_LIMITS, **overrides}.items()
    }
