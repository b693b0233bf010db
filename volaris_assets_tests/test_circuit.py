"""Circuit breaker state machine, driven by a hand-moved clock."""

from __future__ import annotations

import pytest

from volaris_assets.providers.base import ErrorCategory
from volaris_assets.providers.circuit import (
    HEALTH_CATEGORIES,
    PACING_CATEGORIES,
    CircuitBreaker,
    CircuitState,
)

SYMBOL_CATEGORIES = (ErrorCategory.NOT_FOUND, ErrorCategory.NO_DATA, ErrorCategory.BAD_DATA)


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _tripped(clock: ManualClock, threshold: int = 3, cooldown_s: float = 60.0) -> CircuitBreaker:
    breaker = CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown_s, clock=clock)
    for _ in range(threshold):
        breaker.record_failure(ErrorCategory.TIMEOUT)
    assert breaker.state is CircuitState.OPEN
    return breaker


def _probing(clock: ManualClock) -> CircuitBreaker:
    """A tripped breaker whose cool-down has passed and whose one probe is out."""
    breaker = _tripped(clock)
    clock.now = 60.0
    assert breaker.allow()
    return breaker


@pytest.mark.parametrize("category", sorted(HEALTH_CATEGORIES))
def test_opens_after_threshold_consecutive_health_failures(category: ErrorCategory) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=ManualClock())
    breaker.record_failure(category)
    breaker.record_failure(category)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.allow()
    breaker.record_failure(category)
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()


def test_record_failure_without_a_category_counts() -> None:
    breaker = CircuitBreaker(failure_threshold=1, clock=ManualClock())
    breaker.record_failure()
    assert breaker.state is CircuitState.OPEN


@pytest.mark.parametrize("category", SYMBOL_CATEGORIES)
def test_symbol_level_failures_never_trip_and_reset_the_count(category: ErrorCategory) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=ManualClock())
    for _ in range(100):
        breaker.record_failure(category)
    assert breaker.state is CircuitState.CLOSED

    breaker.record_failure(ErrorCategory.TIMEOUT)
    breaker.record_failure(ErrorCategory.TIMEOUT)
    breaker.record_failure(category)
    assert breaker.consecutive_failures == 0
    breaker.record_failure(ErrorCategory.TIMEOUT)
    breaker.record_failure(ErrorCategory.TIMEOUT)
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("category", sorted(PACING_CATEGORIES))
def test_pacing_answers_neither_trip_nor_reset_the_count(category: ErrorCategory) -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=ManualClock())
    for _ in range(100):  # a burst of 429s: the provider is up, we are too fast
        breaker.record_failure(category)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0

    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    breaker.record_failure(category)  # does not hide the failures around it
    assert breaker.consecutive_failures == 2
    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    assert breaker.state is CircuitState.OPEN


def test_a_probe_answered_with_429_hands_the_probe_to_the_next_request() -> None:
    clock = ManualClock()
    breaker = _probing(clock)
    breaker.record_failure(ErrorCategory.RATE_LIMITED)
    assert breaker.state is CircuitState.HALF_OPEN
    assert [breaker.allow() for _ in range(3)] == [True, False, False]
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED


def test_success_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=3, clock=ManualClock())
    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    breaker.record_success()
    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    breaker.record_failure(ErrorCategory.SERVER_ERROR)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 2


def test_half_open_after_cooldown_lets_exactly_one_probe_through() -> None:
    clock = ManualClock()
    breaker = _tripped(clock)
    clock.now = 59.9
    assert breaker.state is CircuitState.OPEN
    assert not breaker.allow()

    clock.now = 60.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert [breaker.allow() for _ in range(10)] == [True] + [False] * 9


def test_probe_success_closes_the_circuit() -> None:
    clock = ManualClock()
    breaker = _probing(clock)
    breaker.record_success()
    assert breaker.state is CircuitState.CLOSED
    assert breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(10))


def test_probe_answering_for_one_symbol_only_closes_the_circuit() -> None:
    clock = ManualClock()
    breaker = _probing(clock)
    breaker.record_failure(ErrorCategory.NOT_FOUND)
    assert breaker.state is CircuitState.CLOSED


def test_probe_failure_reopens_for_a_fresh_cooldown() -> None:
    clock = ManualClock()
    breaker = _probing(clock)
    breaker.record_failure(ErrorCategory.TIMEOUT)
    assert breaker.state is CircuitState.OPEN
    clock.now = 119.0
    assert not breaker.allow()
    clock.now = 120.0
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.allow()


def test_an_unreported_probe_lapses_after_a_cooldown() -> None:
    clock = ManualClock()
    breaker = _probing(clock)
    clock.now = 119.0
    assert not breaker.allow()
    clock.now = 120.0
    assert breaker.allow()
    assert not breaker.allow()


def test_outcomes_arriving_while_open_do_not_move_the_cooldown() -> None:
    clock = ManualClock()
    breaker = _tripped(clock)
    clock.now = 1.0
    breaker.record_success()
    assert breaker.state is CircuitState.OPEN
    clock.now = 30.0
    breaker.record_failure(ErrorCategory.TIMEOUT)
    clock.now = 60.0
    assert breaker.state is CircuitState.HALF_OPEN


@pytest.mark.parametrize(("threshold", "cooldown_s"), [(0, 60.0), (3, 0.0), (3, -1.0)])
def test_invalid_settings_are_rejected(threshold: int, cooldown_s: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=threshold, cooldown_s=cooldown_s)
