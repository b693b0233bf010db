"""The shared provider budget on real stores: a SQLite file, the PostgreSQL server, Redis.

The pacing tests run several OS processes on one budget and judge the grant times each records;
every store here runs on this host, so the store's clock and the processes' clocks are one.
Limits are small (20 requests/s) and runs short (seconds) to keep the file quick; the
tolerances are one request for a process waking a little late.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from volaris_assets.providers.budget import (
    LATE_RESERVES,
    BudgetConfig,
    Limit,
    ProviderBudget,
    open_budget,
)
from volaris_assets.providers.budget.fallback import Failover, MemoryStore, Tier
from volaris_assets.providers.budget.gcra import Cell, count, reserve, reserved_last_minute
from volaris_assets.providers.budget.sqlite import SqliteStore
from volaris_assets.providers.rate_limit import Paused
from volaris_assets.warehouse.urls import normalize_url
from volaris_assets_tests.budget_support import (
    REDIS_URL,
    Run,
    Workers,
    budget_on,
    most_in_window,
    open_store,
    redis_reachable,
    remove_store,
)
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.reliability.processes import free_port

RATE, BURST = 20.0, 2.0
# A grant is recorded when the process gets it back, a little after it fell due.
LATE = 1


def redis_url() -> str:
    """The test Redis; without it the test fails under CI and skips elsewhere."""
    problem = redis_reachable()
    if problem is not None:
        if os.environ.get("CI"):
            pytest.fail(f"Redis required under CI but unreachable at {REDIS_URL}: {problem}")
        pytest.skip(f"Redis unreachable at {REDIS_URL}")
    return REDIS_URL


@pytest.fixture(params=["sqlite", "postgresql", "redis"])
def spec(request, tmp_path):
    """A fresh budget store of each kind: a file, a table or a key prefix of its own."""
    name = f"budget_test_{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        described = {"kind": "sqlite", "path": str(tmp_path / "budget.db")}
    elif request.param == "postgresql":
        described = {"kind": "postgresql", "url": postgres_url(), "table": name}
    else:
        described = {"kind": "redis", "url": redis_url(), "prefix": name}
    yield described
    remove_store(described)


# -- the arithmetic ----------------------------------------------------------------------------


def test_gcra_spaces_requests_after_the_burst():
    cell, limit = Cell(), Limit(10, 3)
    waits = [reserve(cell, 100.0, limit, None).wait for _ in range(5)]
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2])


def test_gcra_refuses_bulk_past_its_slack_and_changes_nothing():
    cell, limit = Cell(), Limit(10, 1)
    for _ in range(4):
        reserve(cell, 100.0, limit, None)  # the next would wait 0.4 s
    before = Cell(**vars(cell))
    refused = reserve(cell, 100.0, limit, 0.1)
    assert not refused.admitted and refused.wait == pytest.approx(0.3)
    assert cell == before
    assert reserve(cell, 100.3, limit, 0.1).admitted


def test_gcra_pause_holds_everyone_and_lets_no_burst_out_after():
    cell, limit = Cell(), Limit(10, 3)
    cell.paused_until = 101.0
    waits = [reserve(cell, 100.0, limit, None).wait for _ in range(3)]
    assert waits == pytest.approx([1.0, 1.1, 1.2])


def test_minute_counters_estimate_the_last_60_seconds():
    cell = Cell()
    for at in (60.0, 70.0, 110.0):
        count(cell, at)
    assert (cell.minute, cell.reserved, cell.reserved_before) == (1, 3, 0)
    count(cell, 125.0)
    assert (cell.minute, cell.reserved, cell.reserved_before) == (2, 1, 3)
    # At 150 s half of minute 1 is still inside the window: 1 + 3 / 2.
    assert reserved_last_minute(cell.minute, cell.reserved, cell.reserved_before, 150.0) == 2
    assert reserved_last_minute(cell.minute, cell.reserved, cell.reserved_before, 500.0) == 0
    count(cell, 500.0)
    assert (cell.minute, cell.reserved, cell.reserved_before) == (8, 1, 0)


def test_budget_runs_on_fake_time_for_callers_tests():
    """How a caller's tests pace without waiting: a memory store on the fake clock."""
    now, slept = [1000.0], []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    tiers = [Tier(MemoryStore(clock=lambda: now[0]), 1.0, True)]
    budget = ProviderBudget({"acct": Limit(10, 1)}, Failover(tiers, retry_s=1), sleep=sleep)

    async def scenario() -> None:
        for _ in range(3):
            await budget.acquire("acct")
        await budget.pause("acct", 2.0)
        await budget.acquire("acct")

    try:
        asyncio.run(scenario())
    finally:
        budget.close()
    assert slept == pytest.approx([0.1, 0.1, 2.0])


def late_sleeper(now: list[float], store: MemoryStore, overshoot: float, slept: list[float]):
    """A fake sleep: the first one wakes `overshoot` late, and while it sleeps another process
    reserves the next three slots."""

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if len(slept) == 1:
            for _ in range(3):
                store.reserve("acct", Limit(10, 1), None)
            seconds += overshoot
        now[0] += seconds

    return sleep


@pytest.mark.parametrize(
    ("overshoot", "late_send_s", "sent_at", "reserves"),
    [
        # 0.3 s late: its slot (1000.2) is gone and 1000.5 is another process's; it queues
        # again behind that one and goes at 1000.6.
        (0.3, 0.25, 1000.6, 1),
        # 0.1 s late is within what a 10-s window absorbs: it goes as it wakes.
        (0.1, 0.25, 1000.3, 0),
        # ... but not within what a 1-s window absorbs: it queues again.
        (0.1, 0.025, 1000.6, 1),
    ],
)
def test_a_caller_that_wakes_late_queues_again(overshoot, late_send_s, sent_at, reserves):
    """A provider counts arrivals: a request sent well after its slot would land among the
    next process's requests, so it gives the slot up instead."""
    now, slept = [1000.0], []
    store = MemoryStore(clock=lambda: now[0])
    for _ in range(2):
        store.reserve("acct", Limit(10, 1), None)  # another process is 0.2 s ahead
    budget = ProviderBudget(
        {"acct": Limit(10, 1, late_send_s)},
        Failover([Tier(store, 1.0, True)], retry_s=1),
        sleep=late_sleeper(now, store, overshoot, slept),
        clock=lambda: now[0],
    )
    try:
        asyncio.run(budget.acquire("acct"))
    finally:
        budget.close()
    assert now[0] == pytest.approx(sent_at)
    assert budget.late_reserves == reserves


def test_waiting_for_the_budgets_thread_is_not_lateness():
    """The slot counts from the store's clock read: a call that waited 0.3 s behind other
    calls for the budget's one thread is on time when it goes at once."""
    now, read = [1000.0], threading.Event()

    def clock() -> float:
        read.set()
        return now[0]

    budget = ProviderBudget(
        {"acct": Limit(10, 1)},
        Failover([Tier(MemoryStore(clock=lambda: now[0]), 1.0, True)], retry_s=1),
        clock=clock,
    )

    def busy_store_call() -> None:
        read.wait(timeout=0.2)  # let the caller look at its clock first, if it does
        now[0] += 0.3

    try:
        budget._executor.submit(busy_store_call)  # runs before the reservation
        asyncio.run(budget.acquire("acct"))
    finally:
        budget.close()
    assert budget.late_reserves == 0
    assert now[0] == pytest.approx(1000.3)


def test_a_caller_always_late_sends_after_a_few_tries():
    """A store whose every answer takes a second must not keep a caller spinning."""
    now = [1000.0]

    def slow_store_clock() -> float:
        now[0] += 1.0
        return now[0]

    budget = ProviderBudget(
        {"acct": Limit(10, 1)},
        Failover([Tier(MemoryStore(clock=slow_store_clock), 1.0, True)], retry_s=1),
        clock=lambda: now[0],
    )
    try:
        asyncio.run(budget.acquire("acct"))
    finally:
        budget.close()
    assert budget.late_reserves == LATE_RESERVES


# -- each store against the arithmetic ---------------------------------------------------------


def test_store_applies_the_gcra(spec):
    """The SQL and Lua copies of `gcra.reserve` give the waits the Python one gives."""
    store, limit = open_store(spec), Limit(10, 3)
    try:
        waits = [store.reserve("acct", limit, None).wait for _ in range(5)]
        refused = store.reserve("acct", limit, 0.15)
        queued = store.reserve("acct", limit, 0.5)
        paused_until = store.pause("acct", 1.0)
        after = [store.reserve("acct", limit, None) for _ in range(2)]
        assert store.paused_until("acct") == paused_until
        now, stored = store.cells()
    finally:
        store.close()
    # Every call takes a little time, which comes off the next wait: hence the tolerance.
    assert waits == pytest.approx([0, 0, 0, 0.1, 0.2], abs=0.05)
    assert not refused.admitted and refused.wait == pytest.approx(0.15, abs=0.05)
    assert queued.admitted and queued.wait == pytest.approx(0.3, abs=0.05)
    assert paused_until - now == pytest.approx(1.0, abs=0.1)
    # After the pause: spaced from its end, no burst.
    assert [g.wait for g in after] == pytest.approx([1.0, 1.1], abs=0.05)
    assert after[0].due == pytest.approx(paused_until, abs=1e-6)
    [acct] = stored
    assert (acct.provider, acct.limit, acct.cell.reserved) == ("acct", limit, 8)


def test_snapshot_shows_pace_use_and_pause(spec):
    budget = budget_on(
        spec, {"acct": Limit(50, 2), "idle": Limit(1, 1), "sim": Limit(float("inf"))}
    )

    async def use() -> None:
        for _ in range(5):
            await budget.acquire("acct")
        await budget.pause("acct", 30)

    try:
        asyncio.run(use())
        states = {state.provider: state for state in budget.snapshot()}
    finally:
        budget.close()
    assert sorted(states) == ["acct", "idle"]
    acct = states["acct"]
    assert (acct.rate, acct.burst, acct.backend, acct.shared) == (50, 2, spec["kind"], True)
    assert abs(acct.reserved_last_60s - 5) <= 1  # 5 unless a minute turned meanwhile
    assert acct.paused_until is not None and acct.wait_s == pytest.approx(30, abs=1)
    assert states["idle"].reserved_last_60s == 0 and states["idle"].paused_until is None


def test_snapshot_tells_its_own_pace_from_another_process_s(spec):
    """Two processes with different limits for one account: each reads its own pace, and the
    one whose pace did not make the last reservation is told the other's."""
    fast, slow = budget_on(spec, {"acct": Limit(50, 2)}), budget_on(spec, {"acct": Limit(5, 1)})
    try:
        asyncio.run(fast.acquire("acct"))
        [seen_by_fast], [seen_by_slow] = fast.snapshot(), slow.snapshot()
    finally:
        fast.close()
        slow.close()
    assert (seen_by_fast.rate, seen_by_fast.disagrees) == (50, False)
    assert (seen_by_slow.rate, seen_by_slow.burst, seen_by_slow.disagrees) == (5, 1, True)
    assert seen_by_slow.last_pace is not None
    assert (seen_by_slow.last_pace.rate, seen_by_slow.last_pace.burst) == (50, 2)


def test_reading_the_state_creates_nothing(spec):
    """`volaris-doctor` reads the budgets and changes nothing: no table, file or key."""
    store = open_store(spec)
    try:
        now, found = store.cells()
    finally:
        store.close()
    assert found == [] and now > 1.7e9
    if spec["kind"] == "sqlite":
        assert not Path(spec["path"]).exists()
    elif spec["kind"] == "postgresql":
        engine = sa.create_engine(normalize_url(spec["url"]))
        try:
            assert not sa.inspect(engine).has_table(spec["table"])
        finally:
            engine.dispose()


def test_try_acquire_takes_only_budget_nobody_waits_for(spec):
    budget = budget_on(spec, {"acct": Limit(10, 2)})

    async def scenario() -> list[bool]:
        return [await budget.try_acquire("acct") for _ in range(3)]

    try:
        assert asyncio.run(scenario()) == [True, True, False]
    finally:
        budget.close()


# -- several processes on one budget -----------------------------------------------------------


def test_processes_share_one_budget_and_its_pauses(spec):
    """Three processes pace together at the limit; a pause set by a fourth stops all three."""
    run = Run("acct", RATE, BURST, seconds=4.0)
    workers = Workers(spec, run, count=3)
    store = open_store(spec)
    try:
        start = workers.start()
        time.sleep(max(0.0, start + 1.5 - time.time()))
        paused_at = time.time()
        paused_until = store.pause("acct", 1.0)
        results = workers.results()
    finally:
        workers.kill()
        store.close()
    assert all(result["shared"] for result in results)
    assert all(result["granted"] for result in results), "a process got nothing"
    granted = sorted(t for result in results for t in result["granted"])
    end = start + run.seconds

    # Never past the limit: over every 1-s window and over the whole run.
    assert most_in_window(granted, 1.0) <= RATE + BURST + LATE
    assert len(granted) <= RATE * (granted[-1] - granted[0]) + BURST + LATE
    # Nothing while paused (a request already on its way when the pause landed aside)...
    assert [t for t in granted if paused_at + 0.05 < t < paused_until] == []
    # ...and the whole budget otherwise.
    before = [t for t in granted if start <= t <= paused_at]
    after = [t for t in granted if paused_until <= t <= end]
    assert len(before) >= 0.9 * RATE * (paused_at - start)
    assert len(after) >= 0.9 * RATE * (end - paused_until)


def test_a_pause_voids_a_reservation_still_sleeping(spec):
    budget = budget_on(spec, {"acct": Limit(5, 1)})
    other = open_store(spec)

    async def scenario() -> tuple[float, float]:
        await budget.acquire("acct")
        second = asyncio.ensure_future(budget.acquire("acct"))  # due in 0.2 s
        await asyncio.sleep(0.05)
        paused_until = await asyncio.to_thread(other.pause, "acct", 0.6)
        await second
        return time.time(), paused_until

    try:
        sent, paused_until = asyncio.run(scenario())
    finally:
        budget.close()
        other.close()
    assert sent >= paused_until


def test_a_long_pause_is_refused_at_once_and_a_long_queue_is_not(spec):
    """A Retry-After of an hour (a quota) must send callers to another provider, not hold
    them for the hour; a queue longer than the bound is no pause and is waited out."""
    budget = budget_on(spec, {"acct": Limit(5, 1)})
    other = open_store(spec)

    async def scenario() -> tuple[float, float, float]:
        await budget.acquire("acct", longest_pause_s=0.1)
        started = time.monotonic()
        await budget.acquire("acct", longest_pause_s=0.1)  # 0.2 s behind the first
        queued = time.monotonic() - started
        await asyncio.to_thread(other.pause, "acct", 3600.0)
        started = time.monotonic()
        with pytest.raises(Paused) as fresh:
            await budget.acquire("acct", longest_pause_s=60.0)
        with pytest.raises(Paused):
            await budget.acquire("acct", "bulk", longest_pause_s=60.0)
        return queued, fresh.value.seconds, time.monotonic() - started

    try:
        queued, left, refused_in = asyncio.run(scenario())
        reserved = budget.snapshot()[0].reserved_last_60s
    finally:
        budget.close()
        other.close()
    assert 0.1 < queued < 1.0
    assert 3500.0 < left <= 3600.0
    assert refused_in < 1.0
    assert reserved == 2  # the refusals reserved nothing behind the pause


def test_a_pause_keeps_the_slots_due_after_it(spec):
    """A short pause (a window's Retry-After) costs the slots inside it, not the queue's: the
    requests queued behind it go when they were due, not behind a new queue."""
    budget = budget_on(spec, {"acct": Limit(5, 1)})
    other = open_store(spec)

    async def scenario() -> tuple[float, list[float]]:
        await budget.acquire("acct")
        start = time.time()

        async def queued() -> float:
            await budget.acquire("acct")
            return time.time() - start

        sent = [asyncio.ensure_future(queued()) for _ in range(2)]  # due in 0.2 and 0.4 s
        await asyncio.sleep(0.05)
        await asyncio.to_thread(other.pause, "acct", 0.1)
        return start, list(await asyncio.gather(*sent))

    try:
        _, sent = asyncio.run(scenario())
    finally:
        budget.close()
        other.close()
    # Voided and queued again they would go at 0.6 and 0.8 s.
    assert sent == pytest.approx([0.2, 0.4], abs=0.08)


# -- priorities --------------------------------------------------------------------------------


def test_fresh_goes_first_and_bulk_takes_what_is_left(spec):
    """Phase 1: fresh work alone asks for more than the budget; bulk gets almost nothing.
    Phase 2: fresh work asks for a quarter; each fresh request waits at most the slack plus
    one interval behind the bulk work, which takes the rest of the budget.

    Phase 2's waits are measured once phase 1's queue of fresh requests has drained: a light
    request asked just after the switch rightly waits behind those (fresh before fresh is
    first come, first served), up to 8 intervals, which is not a wait behind bulk work."""
    slack, interval, phase = 0.2, 1 / RATE, 1.5
    drained = 8 * interval
    budget = budget_on(spec, {"acct": Limit(RATE, 1)}, bulk_slack_s=slack)
    fresh, bulk, light_waits = [], [], []

    async def heavy(until: float) -> None:
        while time.time() < until:
            await budget.acquire("acct", "fresh")
            fresh.append(time.time())

    async def light(start: float, until: float) -> None:
        while time.time() < until:
            asked = time.time()
            await budget.acquire("acct", "fresh")
            fresh.append(time.time())
            if asked >= start:
                light_waits.append(time.time() - asked)
            await asyncio.sleep(0.2)

    async def backfill(until: float) -> None:
        while time.time() < until:
            await budget.acquire("acct", "bulk")
            bulk.append(time.time())

    async def scenario(start: float) -> None:
        switch, end = start + phase, start + 2 * phase
        await asyncio.gather(
            *(heavy(switch) for _ in range(8)),  # a queue of 8 intervals: 0.4 s > slack
            light(switch + drained, end),
            *(backfill(end) for _ in range(10)),
        )

    start = time.time()
    try:
        asyncio.run(scenario(start))
    finally:
        budget.close()
    switch, end = start + phase, start + 2 * phase
    # Phase 1: bulk only while the queue was still short, at the very start.
    assert len([t for t in bulk if t < switch]) <= slack * RATE + BURST + LATE
    assert len([t for t in fresh if t < switch]) >= 0.9 * RATE * phase - slack * RATE
    # Phase 2: fresh never behind more than the slack; bulk fills the budget.
    assert light_waits and max(light_waits) <= slack + interval + 0.1
    used = [t for t in fresh + bulk if switch + slack <= t <= end]
    assert len(used) >= 0.9 * RATE * (end - switch - slack)
    assert len([t for t in bulk if t >= switch]) >= 0.9 * RATE * phase * 0.6


# -- when the store cannot be reached ----------------------------------------------------------


@pytest.mark.parametrize("kind", ["sqlite", "postgresql", "redis"])
def test_unreachable_store_falls_back_at_its_share(kind, tmp_path, caplog):
    """Nothing listens on the port (or the file cannot be made): the budget moves down a store,
    warns once without the password, and paces at that store's share: the host's file at 1/H,
    memory at 1/(H*P)."""
    port, blocker = free_port(), tmp_path / "not-a-folder"
    blocker.write_text("")
    config = BudgetConfig(
        redis_url=f"redis://:s3cret@127.0.0.1:{port}/0" if kind == "redis" else None,
        database_url=f"postgresql://volaris:s3cret@127.0.0.1:{port}/volaris"
        if kind == "postgresql"
        else None,
        sqlite_file=(blocker if kind == "sqlite" else tmp_path) / "budget.db",
        hosts=2,
        processes=2,
    )
    fallback, share = ("memory", 1 / 4) if kind == "sqlite" else ("sqlite", 1 / 2)
    limit, seconds = Limit(40, 1), 1.5
    budget = open_budget({"acct": limit}, config)

    async def spend() -> list[float]:
        until, granted = time.time() + seconds, []
        while time.time() < until:
            await budget.acquire("acct")
            granted.append(time.time())
        return granted

    caplog.set_level(logging.INFO, logger="volaris_assets.providers.budget")
    try:
        granted = asyncio.run(spend())
        [state] = budget.snapshot()
    finally:
        budget.close()
    paced = limit.rate * share
    assert 0.9 * paced * seconds <= len(granted) <= paced * seconds + 1 + LATE
    assert (state.backend, state.shared, state.rate) == (fallback, False, paced)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert kind in warnings[0] and "s3cret" not in warnings[0]
    # the driver's reason, not only its exception's name
    assert ("FileExistsError: " if kind == "sqlite" else "refused") in warnings[0], warnings[0]
    if kind != "sqlite":
        assert f"127.0.0.1:{port}" in warnings[0]


def test_processes_falling_back_together_keep_to_the_host_share(tmp_path):
    """Redis is down for three processes of a host declared one of two (H = 2): together they
    pace at L/2 on the host's file."""
    spec = {
        "kind": "config",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "VOLARIS_BUDGET_FILE": str(tmp_path / "budget.db"),
        "VOLARIS_BUDGET_HOSTS": "2",
    }
    run = Run("acct", 2 * RATE, 1, seconds=2.0)
    workers = Workers(spec, run, count=3)
    try:
        start = workers.start()
        results = workers.results()
    finally:
        workers.kill()
    assert not any(result["shared"] for result in results)
    granted = sorted(t for result in results for t in result["granted"])
    assert most_in_window(granted, 1.0) <= RATE + 1 + LATE
    assert len([t for t in granted if t <= start + run.seconds]) >= 0.9 * RATE * run.seconds


def test_returns_to_the_shared_store_once_it_answers(tmp_path, caplog):
    blocker = tmp_path / "later"
    blocker.write_text("")  # a file where the store's folder should be
    shared = SqliteStore(blocker / "budget.db")
    tiers = [Tier(shared, 1.0, True), Tier(MemoryStore(), 0.5, False)]
    failover = Failover(tiers, retry_s=0.2)
    limit = Limit(100, 1)

    def backend() -> str:
        return failover.run("acct", lambda store, share: store.reserve("acct", limit, None))[
            1
        ].store.kind

    caplog.set_level(logging.INFO, logger="volaris_assets.providers.budget")
    try:
        assert backend() == "memory"
        blocker.unlink()
        assert backend() == "memory"  # not tried again before retry_s
        time.sleep(0.25)
        assert backend() == "sqlite"
    finally:
        failover.close()
    messages = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in messages] == [logging.WARNING, logging.INFO]
    assert "again" in messages[1][1]


# -- configuration -----------------------------------------------------------------------------


def test_configuration_picks_the_shared_store_and_the_shares(tmp_path):
    warehouse = tmp_path / "wh" / "volaris.db"
    embedded = BudgetConfig.from_env({"DATABASE_URL": f"sqlite:///{warehouse}"})
    assert embedded.sqlite_file == warehouse.with_name("budget.db")
    # With a PostgreSQL warehouse, the host's file is where every process of the deployment
    # looks (DAGSTER_HOME), not under whichever folder each was started from.
    postgres = {"DATABASE_URL": "postgresql://v@db.internal/volaris"}
    home = BudgetConfig.from_env({**postgres, "DAGSTER_HOME": str(tmp_path / "home")})
    assert home.sqlite_file == tmp_path / "home" / "budget.db"
    assert BudgetConfig.from_env(postgres).sqlite_file == Path("data/budget.db")
    tiers = embedded.tiers()
    assert [(t.store.kind, t.share, t.shared) for t in tiers] == [
        ("sqlite", 1.0, True),
        ("memory", 1 / 6, False),
    ]
    environ = {
        "DATABASE_URL": "postgresql://volaris:s3cret@db.internal:5433/volaris",
        "VOLARIS_BUDGET_FILE": str(tmp_path / "b.db"),
        "VOLARIS_BUDGET_HOSTS": "2",
        "VOLARIS_BUDGET_PROCESSES": "4",
    }
    tiers = BudgetConfig.from_env(environ).tiers()
    assert [(t.store.kind, t.store.where, t.share) for t in tiers] == [
        ("postgresql", "db.internal:5433/volaris", 1.0),
        ("sqlite", str(tmp_path / "b.db"), 0.5),
        ("memory", "this process", 0.125),
    ]
    redis = BudgetConfig.from_env({**environ, "REDIS_URL": "redis://:s3cret@cache:6380/2"})
    assert redis.tiers()[0].store.where == "cache:6380/2"
    with pytest.raises(ValueError, match="VOLARIS_BUDGET_HOSTS"):
        BudgetConfig.from_env({"VOLARIS_BUDGET_HOSTS": "two"})
    assert Path(BudgetConfig.from_env({}).sqlite_file) == Path("data") / "budget.db"
