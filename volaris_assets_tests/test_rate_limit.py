"""Token bucket: rate, burst and arrival order under concurrency; the default budgets."""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from volaris_assets.providers.rate_limit import (
    COUNTED_OVER_S,
    DEFAULT_RATE_LIMITS,
    LATE_MARGIN,
    PACING_HEADROOM,
    RateLimit,
    TokenBucket,
)
from volaris_assets.providers.resilience import budget_limits

pytestmark = pytest.mark.timeout(30)


class FrozenTime:
    """A clock that only moves when told to, and a sleep that records how long each task waits.

    With every caller arriving at the same frozen instant, a caller's grant time is simply the
    sum of the sleeps it was told to do.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self.waited: dict[asyncio.Task[object] | None, float] = {}

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        task = asyncio.current_task()
        self.waited[task] = self.waited.get(task, 0.0) + seconds
        await asyncio.sleep(0)


def _assert_within_rate(grants: list[float], rate: float, burst: float, slack: float) -> None:
    """No window [grants[i], grants[j]] holds more than burst + rate * width grants."""
    for i in range(len(grants)):
        for j in range(i, len(grants)):
            assert j - i + 1 <= burst + rate * (grants[j] - grants[i]) + slack, (i, j)


def test_fifty_concurrent_callers_are_served_in_order_at_the_rate() -> None:
    frozen = FrozenTime()
    bucket = TokenBucket(rate=10.0, burst=5.0, clock=frozen.clock, sleep=frozen.sleep)

    async def caller() -> float:
        await bucket.acquire()
        return frozen.waited.get(asyncio.current_task(), 0.0)

    async def main() -> list[float]:
        return await asyncio.gather(*(caller() for _ in range(50)))

    grants = asyncio.run(main())

    assert grants == pytest.approx([max(0.0, (i + 1 - 5) / 10.0) for i in range(50)])
    assert grants == sorted(grants)
    _assert_within_rate(grants, rate=10.0, burst=5.0, slack=1e-9)
    assert bucket.acquired == 50


def test_real_clock_rate_holds_for_fifty_concurrent_callers() -> None:
    rate, burst, callers = 100.0, 5.0, 50
    bucket = TokenBucket(rate=rate, burst=burst)

    async def caller() -> float:
        await bucket.acquire()
        return time.monotonic()

    async def main() -> tuple[float, list[float]]:
        start = time.monotonic()
        return start, list(await asyncio.gather(*(caller() for _ in range(callers))))

    start, grants = asyncio.run(main())

    # A grant may come late (timer latency on a busy machine) but never before its slot.
    for index, granted in enumerate(grants):
        assert granted - start >= max(0.0, (index + 1 - burst) / rate) - 0.002, index
    elapsed = max(grants) - start
    assert elapsed >= (callers - burst) / rate - 0.002
    assert elapsed < 2.0
    assert bucket.acquired == callers


def test_an_idle_bucket_refills_only_up_to_burst() -> None:
    frozen = FrozenTime()
    bucket = TokenBucket(rate=2.0, burst=3.0, clock=frozen.clock, sleep=frozen.sleep)

    async def main() -> list[float]:
        for _ in range(3):
            await bucket.acquire()
        frozen.now = 100.0
        waits = []
        for _ in range(4):
            frozen.waited.clear()
            await bucket.acquire()
            waits.append(sum(frozen.waited.values()))
        return waits

    assert asyncio.run(main()) == pytest.approx([0.0, 0.0, 0.0, 0.5])


def test_a_late_arrival_queues_behind_the_callers_already_waiting() -> None:
    frozen = FrozenTime()
    bucket = TokenBucket(rate=1.0, burst=1.0, clock=frozen.clock, sleep=frozen.sleep)

    async def main() -> float:
        await asyncio.gather(*(bucket.acquire() for _ in range(5)))  # slots at 0, 1, 2, 3, 4
        frozen.now = 2.0
        frozen.waited.clear()
        await bucket.acquire()
        return sum(frozen.waited.values())

    # Slots up to t=4 are taken, so the newcomer at t=2 is served at t=5.
    assert asyncio.run(main()) == pytest.approx(3.0)


def test_acquiring_several_tokens_at_once() -> None:
    frozen = FrozenTime()
    bucket = TokenBucket(rate=1.0, burst=3.0, clock=frozen.clock, sleep=frozen.sleep)

    async def main() -> list[float]:
        waits = []
        for tokens in (3.0, 2.0):
            frozen.waited.clear()
            await bucket.acquire(tokens)
            waits.append(sum(frozen.waited.values()))
        return waits

    assert asyncio.run(main()) == pytest.approx([0.0, 2.0])
    assert bucket.acquired == 5.0


def test_an_unlimited_bucket_never_waits() -> None:
    frozen = FrozenTime()
    bucket = RateLimit.unlimited().bucket(clock=frozen.clock, sleep=frozen.sleep)

    async def main() -> None:
        await asyncio.gather(*(bucket.acquire() for _ in range(1000)))

    asyncio.run(main())
    assert bucket.unlimited
    assert frozen.waited == {}
    assert bucket.acquired == 1000


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1.0), (-1.0, 1.0), (1.0, 0.0), (math.nan, 1.0)])
def test_invalid_bucket_settings_are_rejected(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


def test_acquiring_no_tokens_is_rejected() -> None:
    with pytest.raises(ValueError):
        asyncio.run(TokenBucket(rate=1.0, burst=1.0).acquire(0))


def test_rate_limit_unit_conversions() -> None:
    assert RateLimit.per_minute(120, burst=2) == RateLimit(per_second=2.0, burst=2)
    assert RateLimit.per_hour(50).per_second == pytest.approx(50 / 3600)
    assert math.isinf(RateLimit.unlimited().per_second)


def test_default_budgets_cover_every_provider_with_the_documented_figures() -> None:
    assert set(DEFAULT_RATE_LIMITS) == {
        "simulated",
        "schwab",
        "polygon",
        "tiingo",
        "alpaca",
        "finnhub",
        "databento",
        "yahoo",
        "robinhood",
    }
    assert math.isinf(DEFAULT_RATE_LIMITS["simulated"].per_second)
    per_minute = {name: limit.per_second * 60 for name, limit in DEFAULT_RATE_LIMITS.items()}
    assert per_minute["schwab"] == pytest.approx(120)
    assert per_minute["polygon"] == pytest.approx(5)
    assert per_minute["alpaca"] == pytest.approx(200)
    assert per_minute["finnhub"] == pytest.approx(60)
    assert per_minute["robinhood"] == pytest.approx(60)
    assert DEFAULT_RATE_LIMITS["tiingo"].per_second * 3600 == pytest.approx(50)
    assert DEFAULT_RATE_LIMITS["databento"].per_second == pytest.approx(100)
    for limit in DEFAULT_RATE_LIMITS.values():
        assert limit.burst >= 1
        limit.bucket()


def test_parse_rate_limits():
    from volaris_assets.providers.rate_limit import parse_rate_limits

    limits = parse_rate_limits("Polygon=100/1, schwab=120/60:2,")
    assert limits["polygon"] == RateLimit(per_second=100, burst=10, window_s=1)
    assert limits["schwab"] == RateLimit(per_second=2, burst=2, window_s=COUNTED_OVER_S)
    assert parse_rate_limits("") == {}
    with pytest.raises(ValueError, match="provider=requests/seconds"):
        parse_rate_limits("polygon=fast")
    for bad in ("polygon=100/0", "polygon=0/1", "polygon=-5/1", "polygon=inf/1"):
        with pytest.raises(ValueError, match="positive number of requests per positive seconds"):
            parse_rate_limits(bad)
    with pytest.raises(ValueError, match="a burst must be at least 1"):
        parse_rate_limits("polygon=100/1:0")


def test_a_shorter_counting_window_allows_less_lateness():
    """What the pacing headroom absorbs is a share of the window the provider counts over: a
    request 0.1 s late is harmless against a per-minute quota and crowds a per-second one."""
    per_minute, per_second = (
        RateLimit.per_minute(120),
        RateLimit(per_second=100, burst=1, window_s=1),
    )
    absorbed = 1 / PACING_HEADROOM - 1
    assert per_minute.late_send_s == pytest.approx(COUNTED_OVER_S * absorbed * LATE_MARGIN)
    assert 0.1 < per_minute.late_send_s < COUNTED_OVER_S * absorbed
    assert per_second.late_send_s < 1 * absorbed < 0.1
    assert DEFAULT_RATE_LIMITS["databento"].late_send_s == per_second.late_send_s
    paces = budget_limits({"polygon": per_second})
    assert paces["polygon"].late_send_s == per_second.late_send_s
    assert paces["schwab"].late_send_s == per_minute.late_send_s


def test_try_acquire_takes_only_a_token_nobody_is_waiting_for() -> None:
    frozen = FrozenTime()
    bucket = TokenBucket(rate=10.0, burst=1.0, clock=frozen.clock, sleep=frozen.sleep)
    assert bucket.try_acquire()  # the burst token
    assert not bucket.try_acquire()  # spent, nothing refilled yet

    async def two_callers() -> None:
        await asyncio.gather(bucket.acquire(), bucket.acquire())

    frozen.now = 0.1
    asyncio.run(two_callers())  # one takes the refilled token, the other reserves the next
    frozen.now = 0.2
    assert not bucket.try_acquire()  # the token refilled by now is the waiting caller's
    frozen.now = 0.31  # the next one is free
    assert bucket.try_acquire()
    assert bucket.acquired == 4
    with pytest.raises(ValueError):
        bucket.try_acquire(0)


def test_try_acquire_on_an_unlimited_bucket_always_succeeds() -> None:
    bucket = RateLimit.unlimited().bucket()
    assert all(bucket.try_acquire() for _ in range(100))
    assert bucket.acquired == 100
