"""One request budget per provider account, shared by every process that spends it.

A provider counts one budget per account (Schwab: 120 requests/min over every endpoint), while
each process used to pace itself with its own token buckets (`rate_limit.py`): two runs, the
retry sensor and the doctor together could spend four times the budget. Here every process
reserves each request in one shared place, on that place's clock.

Algorithm: reservation GCRA (`gcra.py`). Per provider one number, the theoretical arrival time
`tat`; a reservation does `start = max(tat, now); tat = start + 1/rate` atomically and sleeps
`start - now - (burst - 1)/rate` (at least 0) on the caller's side. One atomic round trip per
request (and one read after a sleep: see pauses), no lock held while anyone sleeps, no polling,
served in arrival order, and over any W seconds at most `rate * W + burst` requests fall due.
A request log (a row per request, counted per window) would cost a write per request and a scan
per check, and tell a blocked caller only when to try again, not its turn.

Why not a library. pyrate-limiter 4.6 has PostgreSQL, Redis and SQLite buckets, but its
PostgreSQL bucket needs psycopg 3 and psycopg_pool (the warehouse and Dagster use psycopg2: a
second driver and pool for one table), its SQL buckets are request logs, its GCRA exists only
for memory and Redis and admits or rejects (a blocked caller sleeps on the hint and competes
again: polling, and a newcomer can overtake it), its Redis store stamps time with the client's
clock, and it has no priorities, no shared pause and no fallback: we would write all of that
around the ten lines of arithmetic it would give us. `limits` 5.8 has Redis but no SQL backend
and only tells whether a request fits now; it cannot reserve a later slot. So the arithmetic is
ours, and the only new dependency is redis-py, for the Redis backend.

Backends (`config.py` chooses; each is a `Store`, called on one worker thread per process so
that no store holds an event-loop object and one budget serves every `asyncio.run`):
- Redis when REDIS_URL is set (`redis.py`): a Lua script by EVALSHA, clock `TIME`.
- PostgreSQL when DATABASE_URL is postgresql:// (`postgres.py`): table `provider_budget`, one
  statement per reservation (locks the row, reads `clock_timestamp()`, writes, returns), through
  SQLAlchemy and psycopg2 like the warehouse.
- Otherwise the SQLite file budget.db beside the warehouse (`sqlite.py`): `BEGIN IMMEDIATE`
  around `gcra.reserve`, shared by every process on the host, clock the host's.

Priorities. `acquire(provider, "fresh")` always reserves. `acquire(provider, "bulk")` reserves
only while the queue (how long a request asked now would wait) is at most `bulk_slack_s`
(default 1 s); otherwise it reserves nothing and asks again the moment the queue will have
drained to the slack. So:
- fresh work never waits behind more than `bulk_slack_s` plus one interval of bulk
  reservations: every bulk reservation was made with at most that much queue ahead of it;
- bulk work never leaves the budget idle while it waits: it is back when the queue is still
  `bulk_slack_s` long, so it takes whatever fresh work leaves, all of it when fresh work stops.
  It waits only while fresh work alone keeps the queue past the slack, i.e. spends the whole
  budget, which is the point of the priority. Bulk callers are not served in order among
  themselves (whoever asks first once the queue drains), and each refused ask is a round
  trip: waiting bulk callers all ask again when the queue drains (measured: 4.7 store calls
  per grant with 10 bulk and 9 fresh callers on one provider).
`try_acquire(provider)` reserves only if the request could go now, without waiting: a hedge
spends only budget nobody is queued for.

A reservation is a slot, and the provider counts arrivals, not slots: a caller that wakes late
(its event loop was busy parsing a chain, the store's answer came back slowly) and sends anyway
lands closer to the next slots than the pace allows. Pacing at 97% of a limit absorbs lateness
up to W * (1/0.97 - 1) in a window of W seconds the provider counts over (0.31 s over 10 s,
31 ms over 1 s); so a caller more than `Limit.late_send_s` behind its slot (0.8 of that:
`rate_limit.RateLimit.late_send_s`) gives the slot up and reserves a new one behind the queue.
The lost slot is budget that went unused while the caller could not send anyway. At most
`LATE_RESERVES` times in a row: a store whose every answer takes longer than that is a store
problem, and the caller then sends rather than spin.

A 429 is the provider talking: `pause(provider, seconds)` sets `paused_until = max(paused_until,
now + seconds)` in the shared store. No reservation falls due before it, the first one after it
starts the spacing afresh (no burst when it ends), and a caller that reserved before the pause
and was still sleeping when it was set checks once after its sleep: if its slot fell inside the
pause it queues again behind the queue; if its slot falls due after the pause it goes as
planned (otherwise every 429 would throw away the whole queue's slots).

When the shared store cannot be reached (`fallback.py`): it is down, or a call takes longer than
`timeout_s` (2 s: connect, lock wait or statement). Ingestion never stops: the process moves to
the next store, logs one warning per provider (the store's kind and host or file, never a
password), and tries the shared store again every `retry_shared_s` (15 s), returning to it once
it answers. With H = VOLARIS_BUDGET_HOSTS and P = VOLARIS_BUDGET_PROCESSES, a limit L is paced:
- in the shared store (Redis, PostgreSQL): at L, by everyone together;
- in the host's SQLite file (the first fallback, or the default store): at L/H, by the host's
  processes together;
- in memory (the last resort): at L/(H*P) per process.
Guarantee: as long as at most H hosts of at most P ingesting processes each spend one account,
and every host sees the shared store alike (all reach it, or none: a server down or
restarting), the account sees at most L requests per second sustained, whichever stores the
processes are on: a host spends at most L/H on its file, or P * L/(H*P) = L/H in memory. The
bursts add up: one per store in use, each at least 1. What it does not cover: a partition that
cuts only some hosts off the shared store (each such host adds up to L/H, and the 429s it draws
pause it), processes of one host that disagree about whether the file works, the moment of a
switch (reservations already made in the previous store still fall due: one queue's worth), and
the up to `retry_shared_s` after the shared store returns during which a host's processes that
have not yet tried it again still spend their fallback share (up to L/H more per host).

State: `snapshot()` lists, per provider, the pace (rate, burst), the reservations in the last
60 s (estimated from per-minute counters kept with the state), the wait a request asked now
would have, the pause in force, and the store answering (kind, where, shared or fallback).

Wiring (resilience.py), one budget per process, like `ResilienceRegistry`:

    budget = open_budget(
        {name: Limit(rl.per_second * PACING_HEADROOM, rl.burst) for name, rl in limits.items()},
        BudgetConfig.from_env(),
    )
    await budget.acquire(source.name, priority)     # instead of `await limiter.acquire()`
    if await budget.try_acquire(source.name): ...   # the hedge, instead of `try_acquire()`
    await budget.pause(source.name, retry_after)    # on a 429, before the retry's backoff
    budget.snapshot()                               # doctor and asset metadata (blocking)
    budget.close()                                  # at process end

A limit of `math.inf` (the simulated market) never touches a store.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Literal, TypeVar

from volaris_assets.providers.budget.config import BudgetConfig
from volaris_assets.providers.budget.fallback import Failover, Tier
from volaris_assets.providers.budget.gcra import Cell, Grant, Limit, reserve, reserved_last_minute
from volaris_assets.providers.budget.store import Store, Stored
from volaris_assets.providers.rate_limit import Clock, Paused

__all__ = [
    "BudgetConfig",
    "BudgetState",
    "Limit",
    "Priority",
    "ProviderBudget",
    "open_budget",
]

Priority = Literal["fresh", "bulk"]
Sleep = Callable[[float], Awaitable[None]]
# How often in a row a late caller reserves again before it sends regardless (see the module
# docstring).
LATE_RESERVES = 3
T = TypeVar("T")


@dataclass(frozen=True)
class BudgetState:
    """One provider's budget as the store answering now sees it.

    `rate` and `burst` are this process's pace (its limit times the store's share), or for a
    provider not configured here the pace the store last reserved at; `last_pace` is the pace
    of the store's last reservation, whichever process made it (None before the first);
    `wait_s` is how long a fresh request asked now would wait; `paused_until` is set while a
    pause is in force; `shared` is False while this process is on a fallback, and
    `passed_over` then names the stores above it and why each failed.
    """

    provider: str
    rate: float
    burst: float
    last_pace: Limit | None
    reserved_last_60s: int
    wait_s: float
    paused_until: datetime | None
    backend: str
    where: str
    shared: bool
    passed_over: str = ""

    @property
    def disagrees(self) -> bool:
        """Whether the last reservation was made at another pace than this process's: the
        processes sharing this budget were given different limits (VOLARIS_RATE_LIMITS,
        VOLARIS_BUDGET_HOSTS or _PROCESSES). Each reservation spends its own process's
        interval, so the account is then paced at neither limit, and over it when the higher
        one is wrong."""
        if self.last_pace is None:
            return False
        return not (
            math.isclose(self.last_pace.rate, self.rate, rel_tol=1e-9)
            and math.isclose(self.last_pace.burst, self.burst, rel_tol=1e-9)
        )


class ProviderBudget:
    """The process's handle on every provider's shared budget (see the module docstring).

    `limits` are the paces to keep, by provider name. `sleep` and `clock` are there for tests on
    fake time, together with a `MemoryStore` on the same fake clock. `late_reserves` counts the
    slots given up by callers that woke too late to use them.
    """

    def __init__(
        self,
        limits: Mapping[str, Limit],
        failover: Failover,
        *,
        bulk_slack_s: float = 1.0,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
    ) -> None:
        self.limits = dict(limits)
        self.bulk_slack_s = bulk_slack_s
        self.late_reserves = 0
        self._failover = failover
        self._sleep = sleep
        self._clock = clock
        # One thread: store calls are short, and in order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="provider-budget")

    async def acquire(
        self, provider: str, priority: Priority = "fresh", *, longest_pause_s: float | None = None
    ) -> None:
        """Wait until one request to `provider` may be sent, or raise `Paused` when a pause
        has more than `longest_pause_s` left (the caller has other providers to try)."""
        if priority not in ("fresh", "bulk"):
            raise ValueError(f"priority must be 'fresh' or 'bulk', got {priority!r}")
        limit = self._limit(provider)
        if limit.unlimited:
            return
        max_wait = None if priority == "fresh" else self.bulk_slack_s
        late = 0
        while True:
            grant, tier, called = await self._reserve_unless_paused(
                provider, limit, max_wait, longest_pause_s
            )
            if grant.wait > 0:
                await self._sleep(grant.wait)
            if not grant.admitted:
                continue
            if grant.wait > 0 and await self._paused_over(provider, grant, tier):
                continue
            if self._clock() - (called + grant.wait) <= limit.late_send_s or late == LATE_RESERVES:
                return
            late += 1
            self.late_reserves += 1

    async def try_acquire(self, provider: str) -> bool:
        """Reserve one request only if it may be sent now; False, reserving nothing, if not."""
        limit = self._limit(provider)
        if limit.unlimited:
            return True
        grant, _, _ = await self._reserve(provider, limit, 0.0)
        return grant.admitted

    async def pause(self, provider: str, seconds: float) -> None:
        """Hold every process's requests to `provider` back for `seconds` from now."""
        if seconds > 0:
            await self._run(provider, lambda store, _share: store.pause(provider, seconds))

    def snapshot(self) -> list[BudgetState]:
        """Every provider the store answering now knows of, and every limited one configured
        here, by name. Blocking (one short query): call it off the event loop."""
        (now, found), tier = self._failover.run(None, lambda store, _share: store.cells())
        by_name = {stored.provider: stored for stored in found}
        for provider, limit in self.limits.items():
            if provider not in by_name and not limit.unlimited:
                by_name[provider] = Stored(provider, None, Cell())
        passed_over = self._failover.passed_over(tier)
        return [
            replace(self._state(by_name[provider], limit, now, tier), passed_over=passed_over)
            for provider in sorted(by_name)
            if (limit := self._pace(by_name[provider], tier)) is not None
        ]

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._failover.close()

    def _limit(self, provider: str) -> Limit:
        try:
            return self.limits[provider]
        except KeyError:
            raise KeyError(f"no budget for provider {provider!r}; pass one in limits") from None

    async def _reserve(
        self, provider: str, limit: Limit, max_wait: float | None
    ) -> tuple[Grant, Tier, float]:
        """The grant, the store that made it, and this process's clock when that store was
        called. The grant's wait counts from the store's clock read, a moment later: lateness
        reckoned from the call is an upper bound, and leaves out the wait for the budget's
        thread (at R = 100 up to ~20 ms, most of a 1-s window's 25-ms allowance)."""
        called = 0.0

        def reserve_in(store: Store, share: float) -> Grant:
            nonlocal called
            called = self._clock()
            return store.reserve(provider, limit.share(share), max_wait)

        grant, tier = await self._run(provider, reserve_in)
        return grant, tier, called

    async def _reserve_unless_paused(
        self, provider: str, limit: Limit, max_wait: float | None, longest_pause_s: float | None
    ) -> tuple[Grant, Tier, float]:
        """`_reserve`, except that a pause with more than `longest_pause_s` left raises `Paused`
        and reserves nothing (a slot taken at the end of an hour's pause by every symbol that
        then tried another provider would queue phantom requests behind it).

        The reservation is asked with a bound first, so the usual case costs no more round
        trips: only a wait past `longest_pause_s` asks the store how long its pause has left,
        and a long queue that is not a pause is then reserved as asked.
        """
        if longest_pause_s is None:
            return await self._reserve(provider, limit, max_wait)
        bound = longest_pause_s if max_wait is None else min(max_wait, longest_pause_s)
        grant, tier, called = await self._reserve(provider, limit, bound)
        if grant.admitted or grant.wait + bound <= longest_pause_s:
            return grant, tier, called
        left = await self._pause_left(provider, grant, tier)
        if left > longest_pause_s:
            raise Paused(left)
        if max_wait is None:
            return await self._reserve(provider, limit, None)
        return grant, tier, called  # bulk past its slack: asks again later, as ever

    async def _pause_left(self, provider: str, refused: Grant, tier: Tier) -> float:
        """Seconds of pause left on the store that refused `refused` (whose `due - wait` is
        the store's clock when it answered); 0 when the store does not answer."""
        loop = asyncio.get_running_loop()
        try:
            paused_until = await loop.run_in_executor(
                self._executor, tier.store.paused_until, provider
            )
        except Exception:  # noqa: BLE001 - no news: the reservation finds out
            return 0.0
        return paused_until - (refused.due - refused.wait)

    async def _paused_over(self, provider: str, grant: Grant, tier: Tier) -> bool:
        """Whether a pause set while the caller slept covers `grant`'s slot (it is then void).

        A slot due after the pause ends stays good: voiding every grant made before a pause
        would throw away the whole queue's slots on each 429 and leave them unused (measured:
        3% of requests each pausing for 50 ms cut a 10/s budget's use to 0.78). Asked of the
        store that made the grant, since only its clock means anything to the grant; a store
        that fails to answer has no news (the next reservation finds out).
        """
        loop = asyncio.get_running_loop()
        try:
            paused_until = await loop.run_in_executor(
                self._executor, tier.store.paused_until, provider
            )
        except Exception:  # noqa: BLE001
            return False
        return paused_until > grant.due

    async def _run(self, provider: str, work: Callable[[Store, float], T]) -> tuple[T, Tier]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._failover.run, provider, work)

    def _pace(self, stored: Stored, tier: Tier) -> Limit | None:
        """This process's pace for `stored` on `tier`, else the pace it was last reserved at
        (None: a provider only ever paused, by a process with other limits)."""
        configured = self.limits.get(stored.provider)
        return configured.share(tier.share) if configured else stored.limit

    @staticmethod
    def _state(stored: Stored, limit: Limit, now: float, tier: Tier) -> BudgetState:
        cell = stored.cell
        pending = reserve(Cell(**vars(cell)), now, limit, None).wait
        return BudgetState(
            provider=stored.provider,
            rate=limit.rate,
            burst=limit.burst,
            last_pace=stored.limit,
            reserved_last_60s=reserved_last_minute(
                cell.minute, cell.reserved, cell.reserved_before, now
            ),
            wait_s=pending,
            paused_until=(
                datetime.fromtimestamp(cell.paused_until, UTC) if cell.paused_until > now else None
            ),
            backend=tier.store.kind,
            where=tier.store.where,
            shared=tier.shared,
        )


def open_budget(limits: Mapping[str, Limit], config: BudgetConfig | None = None) -> ProviderBudget:
    """The budget `config` (default: the environment's) describes, for `limits` by provider."""
    config = config or BudgetConfig.from_env()
    return ProviderBudget(
        limits,
        Failover(config.tiers(), config.retry_shared_s),
        bulk_slack_s=config.bulk_slack_s,
    )
