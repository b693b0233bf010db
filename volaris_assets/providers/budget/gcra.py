"""The GCRA arithmetic every backend applies, and the state it keeps per provider.

One number paces a provider: `tat`, the theoretical arrival time of the next request were the
budget spent at exactly `rate`. A reservation starts at `max(tat, now)`, pushes `tat` one
interval (1/rate) further, and may be sent `(burst - 1)` intervals before its start: a caller
with an empty queue goes at once, up to `burst` callers go together, and everyone after them is
spaced one interval apart in arrival order. Over any window of W seconds at most
`rate * W + burst` reservations fall due, whoever makes them.

A pause (the provider answered 429) empties the budget at its end: no reservation falls due
before `paused_until`, and the first one after it starts the spacing afresh instead of letting
a burst of `burst` out the moment it ends. A reservation made before the pause keeps its slot if
the slot falls due after the pause has ended; only the slots inside the pause are given up
(`Grant.due`, and `ProviderBudget.acquire`).

`max_wait` is how priority is expressed: a reservation that would have to wait longer is not
made at all (the state is left as it was) and the caller is told when to ask again, the moment
the queue will have drained to `max_wait`. `None` always reserves.

The PostgreSQL statement (postgres.py) and the Redis script (redis.py) are this function
written in SQL and Lua, because the read-modify-write has to happen inside the server in one
round trip; the SQLite file and the in-memory fallback run it as is. `test_budget` holds every
backend to the same sequence of waits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MINUTE_S = 60.0


@dataclass(frozen=True)
class Limit:
    """A pace: `rate` requests per second, `burst` of them at once. A rate of `math.inf`
    disables pacing (the simulated market has no quota). `late_send_s` is how far behind its
    slot a request may still be sent (`rate_limit.RateLimit.late_send_s`: what the provider's
    counting window absorbs; the default is a 10-s window's); stores keep only the pace."""

    rate: float
    burst: float = 1.0
    late_send_s: float = 0.25

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ValueError(f"rate must be > 0, got {self.rate}")
        if not self.burst >= 1:
            raise ValueError(f"burst must be >= 1, got {self.burst}")

    @property
    def unlimited(self) -> bool:
        return math.isinf(self.rate)

    @property
    def interval(self) -> float:
        """Seconds one request uses up."""
        return 1.0 / self.rate

    @property
    def head_start(self) -> float:
        """How long before its start a reservation may go: what `burst` allows."""
        return (self.burst - 1.0) / self.rate

    def share(self, fraction: float) -> Limit:
        """This pace cut to `fraction` of itself (a fallback's share), at least one at once.
        Lateness is not cut: what a window absorbs in seconds does not depend on the rate."""
        return Limit(self.rate * fraction, max(1.0, self.burst * fraction), self.late_send_s)


@dataclass(frozen=True)
class Grant:
    """What a reservation attempt answered.

    Admitted: sleep `wait` seconds, then send. Not admitted: nothing was reserved; ask again
    in `wait` seconds. `due` is the moment `wait` ends on the backend's clock: a pause set
    while the caller sleeps voids the grant only if it ends after `due`.
    """

    admitted: bool
    wait: float
    due: float


@dataclass
class Cell:
    """One provider's stored state; the SQL table and the Redis hash have these fields.

    `reserved` counts reservations made in the clock minute `minute` (epoch seconds // 60) and
    `reserved_before` those of the minute before it: enough to estimate the last 60 s.
    """

    tat: float = 0.0
    paused_until: float = 0.0
    minute: int = 0
    reserved: int = 0
    reserved_before: int = 0


def reserve(cell: Cell, now: float, limit: Limit, max_wait: float | None) -> Grant:
    """Reserve one request in `cell` at backend time `now` (updating `cell` if admitted)."""
    start = max(cell.tat, now, cell.paused_until + limit.head_start)
    wait = max(0.0, start - now - limit.head_start)
    if max_wait is not None and wait > max_wait:
        return Grant(admitted=False, wait=wait - max_wait, due=now + wait - max_wait)
    cell.tat = start + limit.interval
    count(cell, now)
    return Grant(admitted=True, wait=wait, due=now + wait)


def count(cell: Cell, now: float) -> None:
    """Add one reservation to the per-minute counters."""
    minute = int(now // MINUTE_S)
    if minute != cell.minute:
        cell.reserved_before = cell.reserved if minute == cell.minute + 1 else 0
        cell.reserved, cell.minute = 0, minute
    cell.reserved += 1


def reserved_last_minute(minute: int, reserved: int, reserved_before: int, now: float) -> int:
    """Reservations in the 60 s before `now`, estimated from the two minute counters: all of
    this minute's and the previous minute's in proportion to how much of it is still inside
    the window (the sliding-window estimate; off by at most the previous minute's unevenness).
    """
    current = int(now // MINUTE_S)
    if current == minute:
        inside = 1.0 - (now - current * MINUTE_S) / MINUTE_S
        return round(reserved + reserved_before * inside)
    if current == minute + 1:
        inside = 1.0 - (now - current * MINUTE_S) / MINUTE_S
        return round(reserved * inside)
    return 0
