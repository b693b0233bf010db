"""A per-provider circuit breaker: stop sending requests to a provider that is down.

Closed: requests flow and consecutive provider-health failures are counted. After
`failure_threshold` of them the circuit opens and every request is refused (the fallback chain
moves on at once instead of spending retries on a dead provider). After `cooldown_s` it is
half-open: exactly one probe request is let through; its success closes the circuit, its failure
re-opens it for another cool-down. All methods are synchronous, so under asyncio there is no
interleaving inside them and no lock is needed; the breaker can be shared across event loops.
"""

from __future__ import annotations

import enum
import logging
import time

from volaris_assets.providers.base import ErrorCategory
from volaris_assets.providers.rate_limit import Clock

logger = logging.getLogger(__name__)

# Failures that say something about the provider as a whole. A symbol the provider does not
# know (not_found), has nothing for (no_data) or sent garbage for (bad_data) shows that the
# provider is up and answering, so those count as successes for the breaker.
HEALTH_CATEGORIES: frozenset[ErrorCategory] = frozenset(
    {
        ErrorCategory.TIMEOUT,
        ErrorCategory.SERVER_ERROR,
        ErrorCategory.UNREACHABLE,
        ErrorCategory.AUTH,
        ErrorCategory.UNKNOWN,
    }
)
# Answers about our pace, not the provider's health: a 429 says "not so fast" and when to come
# back, which the request's own retry honours. Counted as failures, a burst of them (a window
# the provider counts differently from our bucket) opened the circuit and failed the rest of a
# run as circuit_open within milliseconds; counted as successes, they would hide a provider
# failing between them. So they move nothing, except that a half-open probe answered with one
# has learnt nothing and hands the probe to the next request.
PACING_CATEGORIES: frozenset[ErrorCategory] = frozenset({ErrorCategory.RATE_LIMITED})


class CircuitState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Consecutive-failure breaker with a single half-open probe.

    A probe whose outcome is never reported (its task was cancelled) would leave the circuit
    half-open forever, so a probe's lease lapses after `cooldown_s` and the next caller becomes
    the probe. Outcomes that arrive while the circuit is open come from requests sent before it
    opened and are ignored: they must not shorten or extend the cool-down.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        cooldown_s: float = 60.0,
        clock: Clock = time.monotonic,
        *,
        name: str = "",
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not cooldown_s > 0:
            raise ValueError(f"cooldown_s must be > 0, got {cooldown_s}")
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self.name = name
        self._clock = clock
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_started: float | None = None

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit whose cool-down has passed reads as half-open."""
        if self._state is CircuitState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self._state = CircuitState.HALF_OPEN
            self._probe_started = None
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a request go out now? Half-open: True only for the caller that becomes the probe."""
        state = self.state
        if state is CircuitState.CLOSED:
            return True
        if state is CircuitState.OPEN:
            return False
        now = self._clock()
        if self._probe_started is not None and now - self._probe_started < self.cooldown_s:
            return False
        self._probe_started = now
        return True

    def record_success(self) -> None:
        if self.state is CircuitState.OPEN:
            return
        if self._state is CircuitState.HALF_OPEN:
            logger.info("circuit %s closed: probe succeeded", self.name)
        self._state = CircuitState.CLOSED
        self._failures = 0
        self._probe_started = None

    def record_failure(self, category: ErrorCategory = ErrorCategory.UNKNOWN) -> None:
        """Count a failed request; PACING_CATEGORIES count as nothing (see there), and the other
        categories outside HEALTH_CATEGORIES as a success."""
        if category in PACING_CATEGORIES:
            if self.state is CircuitState.HALF_OPEN:
                self._probe_started = None
            return
        if category not in HEALTH_CATEGORIES:
            self.record_success()
            return
        state = self.state
        if state is CircuitState.OPEN:
            return
        self._failures += 1
        if state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
            self._open(category)

    def _open(self, category: ErrorCategory) -> None:
        logger.warning(
            "circuit %s opened for %.0f s after %d consecutive failures (last: %s)",
            self.name,
            self.cooldown_s,
            self._failures,
            category.value,
        )
        self._state = CircuitState.OPEN
        self._opened_at = self._clock()
        self._probe_started = None
