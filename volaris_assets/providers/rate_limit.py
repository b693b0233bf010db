"""Client-side request budgets: one token bucket per provider, and the default budgets.

The bucket works by reservation: each caller takes its tokens at once, possibly driving the
balance negative, and sleeps until the refill covers its debt. Callers are therefore served in
arrival order, however many wait, and the grant rate never exceeds `rate` beyond the initial
`burst`. Nothing in it is bound to an event loop (no Lock, no Event), so one bucket can be shared
by every chain in the process, across separate `asyncio.run` calls.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Paused(Exception):
    """The provider paused its budget for longer than the caller would wait (a `Retry-After`
    of an hour on a quota, say): `seconds` of the pause are left. Raised instead of waiting, so
    the caller can try another provider; nothing was reserved."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"paused for another {seconds:.0f} s by the provider's Retry-After")
        self.seconds = seconds


class Limiter(Protocol):
    """What a guarded source asks of its provider's budget: this process's `TokenBucket`, or
    the budget shared by every process (`budget.BudgetLimiter`)."""

    acquired: float

    async def acquire(self, *, longest_pause_s: float | None = None) -> None:
        """Wait for this request's turn; raise `Paused` rather than wait out a pause that has
        more than `longest_pause_s` left."""

    async def spare(self) -> bool:
        """Take a turn only if nobody is waiting for it now (a hedge)."""

    async def pause(self, seconds: float) -> None:
        """Hold every request back for `seconds` (the provider answered 429)."""


class TokenBucket:
    """At most `burst` requests at once, then `rate` requests per second, first come first served.

    A rate of `math.inf` disables limiting (the simulated market has no quota). A caller that is
    cancelled while waiting forfeits its reservation: the bucket errs on the slow side rather than
    let a later caller jump ahead of the ones already queued.
    """

    def __init__(
        self,
        rate: float,
        burst: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if not burst > 0:
            raise ValueError(f"burst must be > 0, got {burst}")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._sleep = sleep
        self._tokens = burst
        self._updated = clock()
        self._paused_until = -math.inf
        self.acquired = 0.0

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate)

    async def acquire(self, tokens: float = 1.0, *, longest_pause_s: float | None = None) -> None:
        """Wait until `tokens` may be spent, or raise `Paused` when a pause has more than
        `longest_pause_s` left; `acquired` counts the tokens granted so far."""
        if not tokens > 0:
            raise ValueError(f"tokens must be > 0, got {tokens}")
        if longest_pause_s is not None:
            left = self._paused_until - self._clock()
            if left > longest_pause_s:
                raise Paused(left)
        if not self.unlimited:
            debt = self._reserve(tokens)
            if debt > 0:
                await self._sleep(debt / self.rate)
        self.acquired += tokens

    def try_acquire(self, tokens: float = 1.0) -> bool:
        """Take `tokens` only if they are there now; False, taking nothing, otherwise.

        For requests worth sending only with budget that would otherwise go unused (a hedge):
        while anyone waits, the balance is in debt and this declines, so it never delays them.
        """
        if not tokens > 0:
            raise ValueError(f"tokens must be > 0, got {tokens}")
        if not self.unlimited:
            now = self._clock()
            balance = min(self.burst, self._tokens + (now - self._updated) * self.rate)
            if balance < tokens:
                return False
            self._tokens, self._updated = balance - tokens, now
        self.acquired += tokens
        return True

    async def spare(self) -> bool:
        return self.try_acquire()

    async def pause(self, seconds: float) -> None:
        """No grant before `seconds` from now: the balance owes that much refill (a debt a
        pause already deeper keeps), and the spacing restarts from there, with no burst."""
        if self.unlimited or not seconds > 0:
            return
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens = min(self._tokens, 1.0 - seconds * self.rate)
        self._paused_until = max(self._paused_until, now + seconds)

    def _reserve(self, tokens: float) -> float:
        """Take `tokens` now and return how many the balance is short (0 if none)."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        self._tokens -= tokens
        return max(0.0, -self._tokens)


# A provider counts requests when they arrive; a request granted on time here arrives a few
# milliseconds early or late there (event-loop lag, connection reuse). Paced at exactly the
# quota, about one request in ten then lands in a window that is already full and is refused:
# measured against the sandbox's sliding window, 8% of requests at 10/s and 11% at 100/s drew a
# 429, and five in a row open the circuit. At 98% of the quota none did; 97% leaves room for a
# busier event loop.
PACING_HEADROOM = 0.97
# The longest window a provider is taken to count over, whatever period it states: a quota
# stated per minute or per hour may be enforced over shorter windows (bench_day checks every
# 10 s against the per-minute limit).
COUNTED_OVER_S = 10.0
# The share of what the headroom absorbs that a late request may use (`RateLimit.late_send_s`).
LATE_MARGIN = 0.8


@dataclass(frozen=True)
class RateLimit:
    """A provider's request budget: sustained requests per second plus how many may go at once.

    `window_s` is the window the provider counts over: the period it states, at most
    COUNTED_OVER_S. It decides how late a request may still go (`late_send_s`).
    """

    per_second: float
    burst: float
    window_s: float = COUNTED_OVER_S

    @property
    def late_send_s(self) -> float:
        """How far behind its slot a request may still be sent; a later one is re-queued.

        Pacing at PACING_HEADROOM leaves (1/PACING_HEADROOM - 1) of a window's worth of
        requests unused. A request sent L seconds late crowds L x rate requests into a window,
        so L must stay below window_s x (1/PACING_HEADROOM - 1); LATE_MARGIN of that keeps
        a margin. It is 0.25 s for a 10-s window, 25 ms for a 1-s one. (A single 0.25 s for
        every window let bench_scan's R = 100 run crowd its first second past the sandbox's
        100-per-second window in 4 runs of 4, each drawing a 429 whose whole-second
        Retry-After paused the budget for 1 s; at 25 ms none of 5 did, while late callers
        gave up 48-85 of ~1,360 slots.)
        """
        return self.window_s * (1 / PACING_HEADROOM - 1) * LATE_MARGIN

    @classmethod
    def per_minute(cls, requests: float, burst: float = 1.0) -> RateLimit:
        return cls(per_second=requests / 60.0, burst=burst)

    @classmethod
    def per_hour(cls, requests: float, burst: float = 1.0) -> RateLimit:
        return cls(per_second=requests / 3600.0, burst=burst)

    @classmethod
    def unlimited(cls) -> RateLimit:
        return cls(per_second=math.inf, burst=math.inf)

    def bucket(self, clock: Clock = time.monotonic, sleep: Sleep = asyncio.sleep) -> TokenBucket:
        """A bucket pacing at PACING_HEADROOM of the budget (see there for why)."""
        rate = self.per_second * PACING_HEADROOM
        return TokenBucket(rate, self.burst, clock=clock, sleep=sleep)


# Default budgets, keyed by `source.name`. Figures and their sources are from
# /work/shared/reference/provider-notes.md (section numbers below) unless said otherwise.
# Bursts are ours: a token bucket lets through up to `burst` more than its pace in any
# window, and a provider may count over windows shorter than its published one (bench_day
# measures every 10 s against the per-minute limit). With a burst of 1 a bucket pacing at
# PACING_HEADROOM never sends more than the limit's share of any 10 s, provided each request
# goes within 0.31 s of its slot (the shared budget re-queues a later one:
# `RateLimit.late_send_s`; bench_day saw 21 in 10 s of a 20 allowance before it did). A larger
# burst only lets idle start-ups go at once, which a shared budget gains little from. The odd
# 429 that still results is retried after its Retry-After.
# Override per deployment by passing `rate_limits=` to `ResilienceRegistry`; entries there
# replace these by provider name, e.g. a paid Polygon plan:
#     ResilienceRegistry(rate_limits={"polygon": RateLimit(per_second=100, burst=10, window_s=1)})
DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    # In-process simulated market: no quota to respect.
    "simulated": RateLimit.unlimited(),
    # Schwab publishes no GET market-data quota; 120/min is the budget inherited from TD
    # Ameritrade's documented non-trading limit (notes §1.3, reported, not documented by Schwab).
    "schwab": RateLimit.per_minute(120),
    # Free (Basic) plan: 5 calls/min (notes §4, reported; Polygon knowledge base "What is the
    # request limit for Polygon's RESTful APIs?"). Paid plans are unlimited, with a request to
    # stay under 100 requests/s: override with RateLimit(per_second=100, burst=10, window_s=1).
    "polygon": RateLimit.per_minute(5, burst=1),
    # Free "Power User" plan: about 50 requests/hour and 1000/day (notes §2, reported). A bucket
    # cannot express the daily cap; a run over 20 hours would need per_hour(41).
    "tiingo": RateLimit.per_hour(50, burst=1),
    # Basic (free) plan: 200 requests/min; Algo Trader Plus allows 10,000/min (notes §3).
    "alpaca": RateLimit.per_minute(200),
    # Free tier: 60 calls/min; every plan is also capped at 30 calls/s, so an override for a
    # paid plan must stay at or below RateLimit(per_second=30, burst=1, window_s=1) (notes §5,
    # reported).
    "finnhub": RateLimit.per_minute(60),
    # Historical API: 100 time-series requests/s per team (Databento docs "Rate limits",
    # databento.com/docs/api-historical/basics/rate-limits). Every request also costs money.
    "databento": RateLimit(per_second=100, burst=10, window_s=1),
    # Yahoo publishes no quota and throttles with 429 (notes §7). One request per second is
    # a conservative guess, not a documented figure.
    "yahoo": RateLimit.per_minute(60, burst=1),
    # Robinhood documents no API and no quota (its API is private; notes §8) and throttles with
    # 429. The account is a personal brokerage account, whose lock-out or forced
    # re-verification costs far more than a slow run: one request per second is a conservative
    # guess, not a documented figure (a chain is three requests, plus one per expiration and
    # page of its contracts and one per 25 contracts).
    "robinhood": RateLimit.per_minute(60, burst=1),
}


# Budgets outside these are typos (a period in the wrong unit): slower, a run would never end;
# faster, no provider serves it (the sandbox's unpaced benchmarks use 100,000/s).
SLOWEST_BUDGET_PER_S = 1 / 86_400
FASTEST_BUDGET_PER_S = 1_000_000.0


def parse_rate_limits(text: str | None) -> dict[str, RateLimit]:
    """Budgets from "polygon=100/1, schwab=120/60:2" (requests / seconds[:burst]).

    How an operator on a paid plan (or a test against the sandbox) replaces the defaults without
    code; a malformed entry (or a figure that is not positive) is a clear error, never a silent
    default. The seconds are also the window the provider counts over (`RateLimit.window_s`).
    """
    limits: dict[str, RateLimit] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        try:
            name, budget = part.split("=", 1)
            budget, _, burst = budget.partition(":")
            requests, seconds = (float(figure) for figure in budget.split("/", 1))
            burst_figure = float(burst) if burst else None
        except ValueError:
            raise ValueError(
                f"bad rate limit {part!r}: expected provider=requests/seconds[:burst]"
            ) from None
        if not (0 < requests < math.inf and 0 < seconds < math.inf):
            raise ValueError(
                f"bad rate limit {part!r}: a budget must be a positive number of requests per "
                "positive seconds"
            )
        if burst_figure is not None and not 1 <= burst_figure < math.inf:
            raise ValueError(f"bad rate limit {part!r}: a burst must be at least 1")
        per_second = requests / seconds
        if not SLOWEST_BUDGET_PER_S <= per_second <= FASTEST_BUDGET_PER_S:
            raise ValueError(
                f"bad rate limit {part!r}: a budget must be between one request a day and "
                f"{FASTEST_BUDGET_PER_S:,.0f} a second"
            )
        provider = name.strip().lower()
        if provider in limits:
            raise ValueError(f"bad rate limit {part!r}: {provider} has a budget already")
        limits[provider] = RateLimit(
            per_second,
            burst_figure if burst_figure is not None else max(1.0, min(per_second, 10.0)),
            window_s=min(seconds, COUNTED_OVER_S),
        )
    return limits
