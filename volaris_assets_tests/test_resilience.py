"""Retry, breaker and fallback around in-process sources that fail on a script.

Sleeps are recorded instead of slept, so the 2-4-8-16 s backoff runs in milliseconds and the
waits themselves are what the tests assert on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import traceback
from datetime import UTC, datetime

import pandas as pd
import pytest

from volaris_assets.providers.answer_times import (
    ANSWERS,
    HEDGE_OVER_P95,
    MIN_ANSWERS,
    MIN_HEDGE_S,
    AnswerTimes,
)
from volaris_assets.providers.base import WHOLE_CHAIN, ChainFilter, ErrorCategory, ProviderError
from volaris_assets.providers.rate_limit import PACING_HEADROOM
from volaris_assets.providers.resilience import (
    LONGEST_PAUSE_S,
    ChainExhausted,
    CircuitState,
    FallbackChain,
    RateLimit,
    ResilienceRegistry,
    RetrySettings,
    SourceFailed,
)

pytestmark = pytest.mark.timeout(30)

AS_OF = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
SECRET = "sk-live-SECRET123"


def _frame(provider: str, rows: int = 1) -> pd.DataFrame:
    return pd.DataFrame({"symbol": ["AAPL"] * rows, "provider": [provider] * rows})


def _error(category: ErrorCategory, retry_after: float | None = None) -> ProviderError:
    return ProviderError(category, f"scripted {category.value}", retry_after=retry_after)


class ScriptedSource:
    """A provider that answers each call with the next item of its script.

    An exception in the script is raised, anything else returned; once the script runs out
    every call returns a one-row frame. With a `gate`, calls wait for it before answering.
    """

    def __init__(
        self, name: str, script: list[object] | None = None, gate: asyncio.Event | None = None
    ) -> None:
        self.name = name
        self.script = list(script or [])
        self.gate = gate
        self.calls: list[tuple[object, ...]] = []
        self.closed = False

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        self.calls.append(("option_chain", symbol, as_of, only))
        return await self._answer()

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        self.calls.append(("bars", symbol, timeframe, start, end))
        return await self._answer()

    async def aclose(self) -> None:
        self.closed = True

    async def _answer(self) -> pd.DataFrame:
        if self.gate is not None:
            await self.gate.wait()
        item = self.script.pop(0) if self.script else _frame(self.name)
        if isinstance(item, BaseException):
            raise item
        return item  # type: ignore[return-value]


class Harness:
    """A registry with unlimited budgets, a hand-moved clock and recorded retry sleeps."""

    def __init__(
        self,
        *,
        threshold: int = 5,
        jitter: float = 0.0,
        retry: RetrySettings | None = None,
        rng: random.Random | None = None,
        hedge_after_s: float | None = None,
        budget: RateLimit | None = None,
    ) -> None:
        self.now = 0.0
        self.waits: list[float] = []
        self.on_sleep: list[object] = []
        names = ("schwab", "yahoo", "polygon")
        self.registry = ResilienceRegistry(
            {name: budget or RateLimit.unlimited() for name in names},
            hedge_after_s={} if hedge_after_s is None else dict.fromkeys(names, hedge_after_s),
            failure_threshold=threshold,
            cooldown_s=60.0,
            retry=retry or RetrySettings(jitter_s=jitter),
            clock=lambda: self.now,
            sleep=self._sleep,
            rng=(rng or random.Random(0)).random if jitter else (lambda: 0.0),
        )

    async def _sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        for hook in self.on_sleep:
            hook()  # type: ignore[operator]
        await asyncio.sleep(0)

    def chain(self, *sources: ScriptedSource) -> FallbackChain:
        return self.registry.chain(list(sources))

    def trip(self, provider: str) -> None:
        breaker = self.registry.breaker(provider)
        for _ in range(breaker.failure_threshold):
            breaker.record_failure(ErrorCategory.SERVER_ERROR)
        assert breaker.state is CircuitState.OPEN


def _call(harness: Harness, source: ScriptedSource) -> tuple[pd.DataFrame, int]:
    guarded = harness.registry.guard(source)
    return asyncio.run(guarded.call(lambda s: s.option_chain("AAPL", AS_OF)))


def _failure(harness: Harness, source: ScriptedSource) -> SourceFailed:
    with pytest.raises(SourceFailed) as caught:
        _call(harness, source)
    return caught.value


# --- retry -------------------------------------------------------------------------------------


def test_backoff_waits_0_1_0_2_0_4_0_8_s_then_succeeds_on_the_fifth_attempt() -> None:
    harness = Harness()
    source = ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)] * 4)
    frame, attempts = _call(harness, source)
    assert attempts == 5
    assert len(source.calls) == 5
    assert harness.waits == [0.1, 0.2, 0.4, 0.8]
    assert frame["provider"].tolist() == ["schwab"]


def test_jitter_stays_within_its_bounds_and_exhaustion_reports_five_attempts() -> None:
    harness = Harness(jitter=1.0, rng=random.Random(7))
    failure = _failure(harness, ScriptedSource("schwab", [_error(ErrorCategory.SERVER_ERROR)] * 5))
    assert failure.category is ErrorCategory.SERVER_ERROR
    assert failure.attempts == 5
    assert failure.provider == "schwab"
    assert len(harness.waits) == 4
    # Up to as much again as the backoff, and never more than jitter_s (1 s).
    for wait, backoff in zip(harness.waits, (0.1, 0.2, 0.4, 0.8), strict=True):
        assert backoff <= wait < backoff + min(backoff, 1.0)
    assert harness.waits != [0.1, 0.2, 0.4, 0.8]


def test_backoff_is_capped_at_max_s() -> None:
    retry = RetrySettings(attempts=8, max_s=0.8, jitter_s=0.0)
    harness = Harness(threshold=10, retry=retry)
    _failure(harness, ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)] * 8))
    assert harness.waits == [0.1, 0.2, 0.4, 0.8, 0.8, 0.8, 0.8]


@pytest.mark.parametrize(
    ("retry_afters", "expected"),
    [
        ([10.0], [10.0]),  # longer than the 0.1 s backoff: honoured
        ([0.05], [0.1]),  # shorter than the backoff: the backoff wins
        ([None, None, 30.0], [0.1, 0.2, 30.0]),
    ],
)
def test_retry_after_is_honoured(retry_afters: list[float | None], expected: list[float]) -> None:
    harness = Harness()
    script: list[object] = [_error(ErrorCategory.RATE_LIMITED, after) for after in retry_afters]
    _, attempts = _call(harness, ScriptedSource("schwab", script))
    assert harness.waits == expected
    assert attempts == len(retry_afters) + 1


def test_jitter_is_added_on_top_of_retry_after() -> None:
    harness = Harness(jitter=1.0)
    _call(harness, ScriptedSource("schwab", [_error(ErrorCategory.RATE_LIMITED, 10.0)]))
    assert 10.0 <= harness.waits[0] < 11.0


def test_retry_after_beyond_the_cap_gives_up_on_the_provider_at_once() -> None:
    harness = Harness()
    source = ScriptedSource("schwab", [_error(ErrorCategory.RATE_LIMITED, 3600.0)])
    failure = _failure(harness, source)
    assert failure.category is ErrorCategory.RATE_LIMITED
    assert failure.retry_after == 3600.0
    assert failure.attempts == 1
    assert harness.waits == []


@pytest.mark.parametrize(
    "category",
    [ErrorCategory.NOT_FOUND, ErrorCategory.AUTH, ErrorCategory.BAD_DATA, ErrorCategory.NO_DATA],
)
def test_permanent_errors_are_not_retried(category: ErrorCategory) -> None:
    harness = Harness()
    source = ScriptedSource("schwab", [_error(category)])
    failure = _failure(harness, source)
    assert failure.category is category
    assert failure.attempts == 1
    assert len(source.calls) == 1
    assert harness.waits == []


def test_foreign_exceptions_become_unknown_without_their_text() -> None:
    harness = Harness()
    leak = RuntimeError(f"GET https://api.polygon.io/v3/snapshot?apiKey={SECRET} failed")
    failure = _failure(harness, ScriptedSource("polygon", [leak]))
    assert failure.category is ErrorCategory.UNKNOWN
    assert failure.attempts == 1
    assert "RuntimeError" in str(failure)
    rendered = "".join(traceback.format_exception(failure))
    assert SECRET not in rendered
    assert SECRET not in repr(failure)
    assert harness.registry.breaker("polygon").consecutive_failures == 1


def test_timeout_error_from_a_source_is_a_retryable_timeout() -> None:
    harness = Harness()
    _, attempts = _call(harness, ScriptedSource("schwab", [TimeoutError(), TimeoutError()]))
    assert attempts == 3
    assert harness.waits == [0.1, 0.2]


def test_a_hung_request_is_cut_off_by_the_attempt_timeout() -> None:
    harness = Harness(retry=RetrySettings(attempts=1, attempt_timeout_s=0.02))
    failure = _failure(harness, ScriptedSource("schwab", gate=asyncio.Event()))
    assert failure.category is ErrorCategory.TIMEOUT


def test_empty_frames_are_no_data_and_non_frames_bad_data() -> None:
    harness = Harness()
    empty = _failure(harness, ScriptedSource("schwab", [_frame("schwab", rows=0)]))
    assert empty.category is ErrorCategory.NO_DATA
    garbage = _failure(harness, ScriptedSource("yahoo", [{"calls": []}]))
    assert garbage.category is ErrorCategory.BAD_DATA


def test_every_attempt_spends_a_token() -> None:
    harness = Harness()
    _call(harness, ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)] * 2))
    assert harness.registry.limiter("schwab").acquired == 3


# --- retry meets the circuit breaker ----------------------------------------------------------


def test_retries_stop_once_the_circuit_opens() -> None:
    harness = Harness(threshold=3)
    source = ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)] * 5)
    failure = _failure(harness, source)
    assert failure.category is ErrorCategory.TIMEOUT
    assert failure.attempts == 3
    assert harness.waits == [0.1, 0.2]
    assert harness.registry.breaker("schwab").state is CircuitState.OPEN


def test_a_circuit_opening_during_backoff_reports_the_providers_own_answer() -> None:
    harness = Harness()
    harness.on_sleep.append(lambda: harness.trip("schwab"))
    source = ScriptedSource("schwab", [_error(ErrorCategory.SERVER_ERROR)])
    failure = _failure(harness, source)
    assert failure.category is ErrorCategory.SERVER_ERROR
    assert failure.attempts == 1
    assert len(source.calls) == 1


def test_a_dead_host_is_retried_until_its_circuit_opens_then_skipped() -> None:
    harness = Harness(threshold=3)
    dead = ScriptedSource("schwab", [_error(ErrorCategory.UNREACHABLE)] * 10)
    chain = harness.chain(dead, ScriptedSource("polygon"))
    first = asyncio.run(chain.option_chain("AAPL", AS_OF))
    assert first.provider == "polygon"
    assert first.failures == (("schwab", ErrorCategory.UNREACHABLE),)
    assert len(dead.calls) == 3  # retried (transient) until the third refusal opened the circuit
    assert harness.registry.breaker("schwab").state is CircuitState.OPEN
    second = asyncio.run(chain.option_chain("MSFT", AS_OF))
    assert second.failures == (("schwab", ErrorCategory.CIRCUIT_OPEN),)
    assert len(dead.calls) == 3


def test_a_burst_of_429s_leaves_the_circuit_closed_for_the_rest_of_the_run() -> None:
    harness = Harness(threshold=3)
    throttled = [_error(ErrorCategory.RATE_LIMITED, 1.0)] * 4
    _, attempts = _call(harness, ScriptedSource("schwab", throttled))
    assert attempts == 5
    assert harness.registry.breaker("schwab").state is CircuitState.CLOSED
    later = ScriptedSource("schwab")
    _, attempts = _call(harness, later)
    assert attempts == 1
    assert len(later.calls) == 1


def test_an_answer_the_parser_cannot_read_is_bad_data_and_leaves_the_circuit_closed() -> None:
    """A list where a string was, a date past 2262: the provider answered, so five such
    symbols must not switch off a healthy provider for the rest of the run."""
    harness = Harness(threshold=3)
    unreadable = [TypeError("unhashable type: 'list'"), OverflowError("int too large")]
    for error in unreadable * 2:
        failed = _failure(harness, ScriptedSource("schwab", [error]))
        assert failed.category is ErrorCategory.BAD_DATA
        assert failed.attempts == 1  # bad data is not retried
    assert harness.registry.breaker("schwab").state is CircuitState.CLOSED
    failed = _failure(harness, ScriptedSource("schwab", [RuntimeError("?")] * 5))
    assert failed.category is ErrorCategory.UNKNOWN  # anything else still counts


@pytest.mark.parametrize(("advised", "budget_left"), [(0.0, True), (None, False), (2.0, False)])
def test_a_429_pauses_the_budget_for_what_it_advises(advised, budget_left) -> None:
    """ "Retry-After: 0" is the provider saying "now": pausing the default second for it would
    throw a second of budget away; no header at all still means "slow down"."""
    harness = Harness(budget=RateLimit(per_second=10.0, burst=5.0))
    _call(harness, ScriptedSource("schwab", [_error(ErrorCategory.RATE_LIMITED, advised)]))
    assert asyncio.run(harness.registry.limiter("schwab").spare()) is budget_left


@pytest.mark.parametrize("advised", [3600.0, 1e11])
def test_a_pause_past_the_cap_sends_later_symbols_elsewhere_without_waiting(advised) -> None:
    """Tiingo's hourly quota answers "Retry-After: 3600": the symbol that drew it moves on,
    and so does every later one, at once, until the pause is over; an absurd Retry-After
    pauses for a day at most."""
    harness = Harness(budget=RateLimit(per_second=10.0, burst=1.0))
    throttled = ScriptedSource("schwab", [_error(ErrorCategory.RATE_LIMITED, advised)])
    chain = harness.chain(throttled, ScriptedSource("yahoo"))
    assert asyncio.run(chain.option_chain("AAPL", AS_OF)).provider == "yahoo"
    later = ScriptedSource("schwab")
    fetched = asyncio.run(harness.chain(later, ScriptedSource("yahoo")).option_chain("MSFT", AS_OF))
    assert fetched.provider == "yahoo"
    assert fetched.failures == (("schwab", ErrorCategory.RATE_LIMITED),)
    assert later.calls == []
    assert max(harness.waits, default=0.0) < 60.0  # nobody slept out the pause
    harness.now += min(advised, LONGEST_PAUSE_S)
    assert _call(harness, ScriptedSource("schwab"))[1] == 1


def test_an_open_circuit_refuses_without_calling_the_source() -> None:
    harness = Harness()
    harness.trip("schwab")
    source = ScriptedSource("schwab")
    failure = _failure(harness, source)
    assert failure.category is ErrorCategory.CIRCUIT_OPEN
    assert failure.attempts == 0
    assert source.calls == []
    assert harness.waits == []


def test_a_circuit_opening_while_a_request_waits_for_its_turn_stops_it_being_sent() -> None:
    """Behind a budget of one request a second, the second symbol waits; the circuit opens
    meanwhile (other requests failed): it is not sent to the failing provider."""
    harness = Harness(budget=RateLimit(per_second=1, burst=1))

    def others_failed() -> None:
        harness.trip("schwab")
        harness.now += 1.0  # the budget's wait passes; the circuit stays open (60 s)

    source = ScriptedSource("schwab")
    assert _call(harness, source)[1] == 1
    harness.on_sleep.append(others_failed)
    failure = _failure(harness, source)
    assert harness.waits, "the second request did not wait for the budget"
    assert failure.category is ErrorCategory.CIRCUIT_OPEN
    assert (failure.attempts, len(source.calls)) == (0, 1)


def test_half_open_sends_a_single_probe_among_concurrent_callers_then_closes() -> None:
    harness = Harness()
    harness.trip("schwab")
    harness.now = 60.0
    gate = asyncio.Event()
    source = ScriptedSource("schwab", gate=gate)
    guarded = harness.registry.guard(source)

    async def main() -> list[object]:
        tasks = [
            asyncio.create_task(guarded.call(lambda s: s.option_chain("AAPL", AS_OF)))
            for _ in range(10)
        ]
        for _ in range(5):
            await asyncio.sleep(0)
        assert len(source.calls) == 1
        assert sum(task.done() for task in tasks) == 9
        gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    refused = [o for o in outcomes if isinstance(o, SourceFailed)]
    answered = [o for o in outcomes if isinstance(o, tuple)]
    assert len(answered) == 1
    assert len(refused) == 9
    assert {o.category for o in refused} == {ErrorCategory.CIRCUIT_OPEN}
    assert harness.registry.breaker("schwab").state is CircuitState.CLOSED
    _, attempts = _call(harness, source)
    assert attempts == 1


def test_a_failed_probe_reopens_the_circuit() -> None:
    harness = Harness()
    harness.trip("schwab")
    harness.now = 60.0
    failure = _failure(harness, ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)]))
    assert failure.category is ErrorCategory.TIMEOUT
    assert failure.attempts == 1
    assert harness.registry.breaker("schwab").state is CircuitState.OPEN
    assert _failure(harness, ScriptedSource("schwab")).category is ErrorCategory.CIRCUIT_OPEN


# --- hedging a hung request ------------------------------------------------------------------


class SlowFirst(ScriptedSource):
    """The first call answers (from the script) only after `first_s` of real time, or never
    with None; the second (the hedge) after `hedge_s`; calls after them at once."""

    def __init__(
        self,
        name: str,
        script: list[object] | None = None,
        first_s: float | None = None,
        hedge_s: float = 0.0,
    ):
        super().__init__(name, script)
        self.first_s = first_s
        self.hedge_s = hedge_s
        self.cancelled = 0

    async def _answer(self) -> pd.DataFrame:
        call = len(self.calls)
        try:
            if call == 1 and self.first_s is None:
                await asyncio.Event().wait()
            await asyncio.sleep({1: self.first_s, 2: self.hedge_s}.get(call, 0.0))
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super()._answer()


def test_a_hung_request_is_hedged_with_a_spare_token_and_the_first_answer_wins() -> None:
    harness = Harness(hedge_after_s=0.01)
    source = SlowFirst("schwab")  # hangs
    frame, attempts = _call(harness, source)
    assert frame["provider"].tolist() == ["schwab"]
    assert attempts == 2
    assert len(source.calls) == 2
    assert source.cancelled == 1  # the hung request is not left behind
    assert harness.registry.limiter("schwab").acquired == 2
    assert harness.registry.breaker("schwab").consecutive_failures == 0


def test_a_request_answering_in_time_is_not_hedged() -> None:
    harness = Harness(hedge_after_s=1.0)
    source = SlowFirst("schwab", first_s=0.01)
    assert _call(harness, source)[1] == 1
    assert len(source.calls) == 1


def _answered_at_once(harness: Harness, provider: str) -> None:
    """Give `provider` MIN_ANSWERS immediate answers: its hedge delay drops to MIN_HEDGE_S."""
    for _ in range(MIN_ANSWERS):
        assert _call(harness, ScriptedSource(provider))[1] == 1


def test_answer_times_are_kept_per_hedged_provider_across_guards() -> None:
    hedged = Harness(hedge_after_s=1.0).registry
    assert hedged.answer_times("schwab") is hedged.answer_times("schwab")
    assert hedged.answer_times("schwab") is not hedged.answer_times("yahoo")
    assert Harness().registry.answer_times("schwab") is None  # no hedge, nothing to time


def test_before_the_configured_delay_a_hedge_needs_a_token_to_spare() -> None:
    harness = Harness(hedge_after_s=5.0, budget=RateLimit(per_second=1.0, burst=1.0))
    _answered_at_once(harness, "schwab")  # each took a token; the fake clock refills none
    source = SlowFirst("schwab", first_s=MIN_HEDGE_S + 0.3)
    _, attempts = _call(harness, source)
    assert attempts == 1
    assert len(source.calls) == 1


def test_from_the_configured_delay_a_hedge_takes_its_turn_in_the_queue() -> None:
    """A run spending its whole budget never has a token to spare before its queue drains: a
    request hung that long is hedged with a queued turn instead."""
    harness = Harness(hedge_after_s=0.05, budget=RateLimit(per_second=1.0, burst=1.0))
    harness.registry.limiter("schwab").try_acquire()  # someone else had the burst token
    source = SlowFirst("schwab")  # hangs
    frame, attempts = _call(harness, source)
    assert frame["provider"].tolist() == ["schwab"]
    assert attempts == 2
    assert source.cancelled == 1
    assert harness.waits[-1] > 0  # the hedge waited for its turn (the fake sleep returns at once)


def test_a_request_answering_while_its_hedge_waits_in_the_queue_is_not_hedged() -> None:
    """On real time: the request takes the one token, so the hedge's turn is a second away;
    the request answers in 0.2 s."""
    registry = ResilienceRegistry(
        {"schwab": RateLimit(per_second=1.0, burst=1.0)}, hedge_after_s={"schwab": 0.05}
    )
    source = SlowFirst("schwab", first_s=0.2)
    started = time.monotonic()
    _, attempts = asyncio.run(registry.guard(source).call(lambda s: s.option_chain("AAPL", AS_OF)))
    assert attempts == 1
    assert len(source.calls) == 1
    assert time.monotonic() - started < 0.9  # nobody waited for the hedge's turn


def test_no_hedge_of_a_half_open_probe() -> None:
    harness = Harness(hedge_after_s=0.01)
    harness.trip("schwab")
    harness.now = 60.0
    source = SlowFirst("schwab", first_s=0.1)
    _, attempts = _call(harness, source)
    assert attempts == 1
    assert harness.registry.breaker("schwab").state is CircuitState.CLOSED


def test_a_failed_hedge_fails_the_attempt_without_waiting_for_the_hung_request() -> None:
    harness = Harness(hedge_after_s=0.01, retry=RetrySettings(attempts=1))
    # The hedge answers first, with a 5xx; the hung request would answer a timeout after 30 s.
    script = [_error(ErrorCategory.SERVER_ERROR), _error(ErrorCategory.TIMEOUT)]
    source = SlowFirst("schwab", script, first_s=30.0)
    failure = _failure(harness, source)
    assert failure.category is ErrorCategory.SERVER_ERROR
    assert failure.attempts == 2
    assert source.cancelled == 1  # the retry that follows is a fresh request
    # The hung request never answered: only the hedge's failure says anything of the provider.
    assert harness.registry.breaker("schwab").consecutive_failures == 1


def test_when_the_hung_request_fails_first_the_hedge_answers() -> None:
    harness = Harness(hedge_after_s=0.01, retry=RetrySettings(attempts=1))
    source = SlowFirst("schwab", [_error(ErrorCategory.TIMEOUT)], first_s=0.05, hedge_s=0.2)
    frame, attempts = _call(harness, source)
    assert frame["provider"].tolist() == ["schwab"]
    assert attempts == 2
    assert source.cancelled == 0
    assert harness.registry.breaker("schwab").consecutive_failures == 0  # the hedge's success


def test_the_hedge_delay_follows_the_providers_recent_answers_within_its_bounds() -> None:
    times = AnswerTimes()
    for _ in range(MIN_ANSWERS - 1):
        times.record(0.1)
    assert times.hedge_after(2.0) == 2.0  # too few answers to go by
    times.record(0.1)
    assert times.hedge_after(2.0) == MIN_HEDGE_S  # twice 0.1 s is below the floor
    for _ in range(ANSWERS):
        times.record(0.4)
    assert times.hedge_after(2.0) == pytest.approx(HEDGE_OVER_P95 * 0.4)
    for _ in range(ANSWERS):
        times.record(3.0)
    assert times.hedge_after(2.0) == 2.0  # never later than configured


def test_a_provider_known_to_answer_at_once_has_a_hung_request_hedged_soon() -> None:
    """The configured delay (5 s here) is the latest a hedge goes: once the provider's answers
    are known to come back at once, a request unanswered for MIN_HEDGE_S is taken for hung."""
    harness = Harness(hedge_after_s=5.0)
    _answered_at_once(harness, "schwab")
    source = SlowFirst("schwab")  # hangs
    started = time.monotonic()
    frame, attempts = _call(harness, source)
    assert frame["provider"].tolist() == ["schwab"]
    assert attempts == 2
    assert MIN_HEDGE_S <= time.monotonic() - started < 2.0


def test_only_providers_billed_by_quota_alone_are_hedged_by_default() -> None:
    registry = ResilienceRegistry()
    assert registry.guard(ScriptedSource("schwab")).hedge_after_s == 2.0
    for name in ("databento", "simulated", "polygon"):
        assert registry.guard(ScriptedSource(name)).hedge_after_s is None


# --- fallback chain ---------------------------------------------------------------------------


def test_the_primary_answers_when_it_can() -> None:
    harness = Harness()
    primary, fallback = ScriptedSource("schwab"), ScriptedSource("yahoo")
    fetched = asyncio.run(harness.chain(primary, fallback).option_chain("AAPL", AS_OF))
    assert (fetched.provider, fetched.attempts, fetched.failures) == ("schwab", 1, ())
    assert fallback.calls == []
    with pytest.raises(dataclasses.FrozenInstanceError):
        fetched.provider = "yahoo"  # type: ignore[misc]


def test_a_permanent_error_moves_on_to_the_next_provider_with_the_same_request() -> None:
    harness = Harness()
    primary = ScriptedSource("schwab", [_error(ErrorCategory.NOT_FOUND)])
    fallback = ScriptedSource("yahoo")
    puts = ChainFilter(right="P")
    chain = harness.chain(primary, fallback)
    fetched = asyncio.run(chain.option_chain("AAPL", AS_OF, puts))
    assert fetched.provider == "yahoo"
    assert fetched.frame["provider"].tolist() == ["yahoo"]
    assert fetched.attempts == 2
    assert fetched.failures == (("schwab", ErrorCategory.NOT_FOUND),)
    assert primary.calls == fallback.calls == [("option_chain", "AAPL", AS_OF, puts)]


def test_exhausted_retries_move_on_and_every_attempt_is_counted() -> None:
    harness = Harness()
    primary = ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)] * 5)
    fetched = asyncio.run(
        harness.chain(primary, ScriptedSource("yahoo")).option_chain("AAPL", AS_OF)
    )
    assert fetched.provider == "yahoo"
    assert fetched.attempts == 6
    assert fetched.failures == (("schwab", ErrorCategory.TIMEOUT),)
    assert harness.waits == [0.1, 0.2, 0.4, 0.8]


def test_an_open_circuit_moves_on_without_touching_the_primary() -> None:
    harness = Harness()
    harness.trip("schwab")
    primary = ScriptedSource("schwab")
    fetched = asyncio.run(
        harness.chain(primary, ScriptedSource("yahoo")).option_chain("AAPL", AS_OF)
    )
    assert primary.calls == []
    assert fetched.provider == "yahoo"
    assert fetched.attempts == 1
    assert fetched.failures == (("schwab", ErrorCategory.CIRCUIT_OPEN),)


def test_an_empty_frame_moves_on_as_no_data() -> None:
    harness = Harness()
    primary = ScriptedSource("schwab", [_frame("schwab", rows=0)])
    fetched = asyncio.run(
        harness.chain(primary, ScriptedSource("yahoo")).option_chain("AAPL", AS_OF)
    )
    assert fetched.provider == "yahoo"
    assert fetched.failures == (("schwab", ErrorCategory.NO_DATA),)
    assert harness.registry.breaker("schwab").consecutive_failures == 0


def test_bars_go_through_the_chain_with_their_arguments() -> None:
    harness = Harness()
    start, end = datetime(2026, 3, 2, 14, 30, tzinfo=UTC), datetime(2026, 3, 2, 21, tzinfo=UTC)
    primary = ScriptedSource("schwab", [_error(ErrorCategory.AUTH)])
    fallback = ScriptedSource("polygon")
    fetched = asyncio.run(harness.chain(primary, fallback).bars("MSFT", "1m", start, end))
    assert fetched.provider == "polygon"
    assert fallback.calls == [("bars", "MSFT", "1m", start, end)]
    assert fetched.failures == (("schwab", ErrorCategory.AUTH),)


def _exhausted(harness: Harness, *sources: ScriptedSource) -> ChainExhausted:
    with pytest.raises(ChainExhausted) as caught:
        asyncio.run(harness.chain(*sources).option_chain("AAPL", AS_OF))
    return caught.value


def test_exhausted_chain_reports_the_primarys_answer_and_all_attempts() -> None:
    harness = Harness()
    exhausted = _exhausted(
        harness,
        ScriptedSource("schwab", [_error(ErrorCategory.TIMEOUT)] * 5),
        ScriptedSource("yahoo", [_error(ErrorCategory.NOT_FOUND)]),
    )
    assert isinstance(exhausted, ProviderError)
    assert exhausted.category is ErrorCategory.TIMEOUT
    assert exhausted.provider == "schwab"
    assert exhausted.attempts == 6
    assert exhausted.failures == (
        ("schwab", ErrorCategory.TIMEOUT),
        ("yahoo", ErrorCategory.NOT_FOUND),
    )
    assert "yahoo=not_found" in str(exhausted)


def test_exhausted_chain_skips_an_open_circuit_for_a_more_specific_category() -> None:
    harness = Harness()
    harness.trip("schwab")
    exhausted = _exhausted(
        harness,
        ScriptedSource("schwab"),
        ScriptedSource("yahoo", [_error(ErrorCategory.NOT_FOUND)]),
        ScriptedSource("polygon", [_error(ErrorCategory.AUTH)]),
    )
    assert exhausted.category is ErrorCategory.NOT_FOUND
    assert exhausted.provider == "yahoo"
    assert exhausted.attempts == 2


def test_exhausted_chain_is_circuit_open_when_every_circuit_is_open() -> None:
    harness = Harness()
    harness.trip("schwab")
    harness.trip("yahoo")
    exhausted = _exhausted(harness, ScriptedSource("schwab"), ScriptedSource("yahoo"))
    assert exhausted.category is ErrorCategory.CIRCUIT_OPEN
    assert exhausted.attempts == 0
    assert not exhausted.retryable


def test_exhausted_chain_text_holds_no_secret() -> None:
    harness = Harness()
    leak = ConnectionResetError(f"reset by https://api.polygon.io/?apiKey={SECRET}")
    exhausted = _exhausted(harness, ScriptedSource("polygon", [leak]))
    assert SECRET not in "".join(traceback.format_exception(exhausted))


def test_rotated_starts_with_the_named_provider_and_wraps_around() -> None:
    harness = Harness()
    sources = [ScriptedSource(name) for name in ("schwab", "yahoo", "polygon")]
    chain = harness.chain(*sources)
    assert chain.rotated("yahoo").providers == ("yahoo", "polygon", "schwab")
    assert chain.rotated(None).providers == ("schwab", "yahoo", "polygon")
    assert chain.providers == ("schwab", "yahoo", "polygon")
    with pytest.raises(ValueError, match="tiingo"):
        chain.rotated("tiingo")

    fetched = asyncio.run(chain.rotated("polygon").option_chain("AAPL", AS_OF))
    assert fetched.provider == "polygon"
    assert sources[0].calls == []


def test_aclose_closes_every_source_even_when_one_fails() -> None:
    class BrokenClose(ScriptedSource):
        async def aclose(self) -> None:
            raise OSError("socket already gone")

    harness = Harness()
    sources = [ScriptedSource("schwab"), BrokenClose("yahoo"), ScriptedSource("polygon")]
    with pytest.raises(OSError, match="already gone"):
        asyncio.run(harness.chain(*sources).aclose())
    assert sources[0].closed
    assert sources[2].closed


def test_a_chain_needs_distinct_providers() -> None:
    harness = Harness()
    with pytest.raises(ValueError):
        harness.chain()
    with pytest.raises(ValueError, match="twice"):
        harness.chain(ScriptedSource("schwab"), ScriptedSource("schwab"))


# --- registry ---------------------------------------------------------------------------------


def test_registry_shares_one_limiter_and_breaker_per_provider() -> None:
    harness = Harness(threshold=2)
    registry = harness.registry
    assert registry.limiter("schwab") is registry.limiter("schwab")
    assert registry.breaker("schwab") is registry.breaker("schwab")
    assert registry.breaker("schwab") is not registry.breaker("yahoo")

    failing = ScriptedSource("schwab", [_error(ErrorCategory.SERVER_ERROR)] * 2)
    first = registry.chain([failing, ScriptedSource("yahoo")])
    asyncio.run(first.option_chain("AAPL", AS_OF))
    untouched = ScriptedSource("schwab")
    second = registry.chain([untouched, ScriptedSource("yahoo")])
    fetched = asyncio.run(second.bars("AAPL", "1d", AS_OF, AS_OF))
    assert untouched.calls == []
    assert fetched.failures == (("schwab", ErrorCategory.CIRCUIT_OPEN),)


def test_registry_overrides_replace_defaults_by_name() -> None:
    registry = ResilienceRegistry({"polygon": RateLimit(per_second=100, burst=10)})
    assert registry.limiter("polygon").rate == pytest.approx(100 * PACING_HEADROOM)
    assert registry.limiter("schwab").rate == pytest.approx(2.0 * PACING_HEADROOM)
    with pytest.raises(KeyError, match="etrade"):
        registry.limiter("etrade")


def test_a_follow_up_waiting_for_the_budget_is_not_timed_as_the_request() -> None:
    """A call of two requests on a budget of 2 a second: the second waits ~0.5 s for its turn,
    longer than the 0.3-s attempt timeout, and is still not a timeout (before: every
    multi-page chain at Polygon's 5 a minute failed as one)."""
    from volaris_assets.providers import http

    class TwoPages:
        name = "polygon"

        async def option_chain(self, symbol, as_of, only=WHOLE_CHAIN) -> pd.DataFrame:
            follow_ups = http._follow_ups.get()
            for _ in range(2):
                await follow_ups.before_request()
            return _frame("polygon")

    registry = ResilienceRegistry(
        {"polygon": RateLimit(per_second=2.0, burst=1)},
        retry=RetrySettings(attempts=1, attempt_timeout_s=0.3),
        hedge_after_s={},
    )
    guarded = registry.guard(TwoPages())
    started = time.monotonic()
    frame, attempts = asyncio.run(guarded.call(lambda s: s.option_chain("AAPL", AS_OF)))
    assert not frame.empty and attempts == 1 and time.monotonic() - started > 0.3
    assert registry.breaker("polygon").state is CircuitState.CLOSED
