"""Shared provider budget: reservations/s per store, from 1 and 4 processes, against the
per-process token bucket it replaces.

    python -m bench.bench_budget [--quick] [--seconds 3] [--pg-url URL] [--redis-url URL]

Each process reserves one request after another from one provider's budget for `--seconds`,
with the limit set far above what it can reach (1e9/s), so that nothing waits and the figure is
the cost of a reservation itself: `ProviderBudget.acquire` (a hop to the budget's thread and
one round trip to the store), and `store.reserve` called directly (the round trip alone).
With 4 processes all of them reserve from the same provider at once (one row, one key, one
file lock) and the figure is their sum. Stores: the SQLite file (a temp file), PostgreSQL (a
dedicated database `volaris_bench`, created if missing, a table of the benchmark's own,
dropped after) and Redis (a key prefix of its own, deleted after; skipped if Redis is down).

Baseline, same run: `TokenBucket.acquire` (providers/rate_limit.py, what every process paces
with today, no sharing), and the budget on its in-memory store (the last-resort fallback: the
budget's own overhead without a store round trip; from 4 processes these are 4 separate
budgets).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import shutil
import tempfile
import time
import uuid
from multiprocessing.synchronize import Barrier
from pathlib import Path

from bench import common
from bench.bench_warehouse import ensure_database
from volaris_assets.providers.budget import Limit
from volaris_assets.providers.rate_limit import TokenBucket
from volaris_assets_tests.budget_support import (
    budget_on,
    open_store,
    redis_reachable,
    remove_store,
)

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/volaris_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
UNREACHABLE = Limit(1e9, 1)
PROVIDER = "bench"
# The largest default budget in rate_limit.DEFAULT_RATE_LIMITS (Databento, 100/s).
LARGEST_BUDGET_PER_S = 100.0


async def _acquire_loop(spec: dict[str, str], seconds: float) -> int:
    budget = budget_on(spec, {PROVIDER: UNREACHABLE})
    try:
        await budget.acquire(PROVIDER)  # connects, creates the table or file
        done, until = 0, time.perf_counter() + seconds
        while time.perf_counter() < until:
            await budget.acquire(PROVIDER)
            done += 1
        return done
    finally:
        budget.close()


def _direct_loop(spec: dict[str, str], seconds: float) -> int:
    store = open_store(spec)
    try:
        store.reserve(PROVIDER, UNREACHABLE, None)
        done, until = 0, time.perf_counter() + seconds
        while time.perf_counter() < until:
            store.reserve(PROVIDER, UNREACHABLE, None)
            done += 1
        return done
    finally:
        store.close()


async def _bucket_loop(seconds: float) -> int:
    bucket = TokenBucket(UNREACHABLE.rate, UNREACHABLE.burst)
    done, until = 0, time.perf_counter() + seconds
    while time.perf_counter() < until:
        await bucket.acquire()
        done += 1
    return done


def measure(spec: dict[str, str] | None, seconds: float, direct: bool = False) -> int:
    """Reservations one process made in `seconds` (spec None: today's token bucket)."""
    if spec is None:
        return asyncio.run(_bucket_loop(seconds))
    if direct:
        return _direct_loop(spec, seconds)
    return asyncio.run(_acquire_loop(spec, seconds))


def _child(spec: dict[str, str] | None, seconds: float, start: Barrier, out) -> None:
    if spec is not None:
        open_store(spec).close()  # imports and the store's module loaded before the start
    start.wait()
    out.put(measure(spec, seconds))


def in_processes(spec: dict[str, str] | None, seconds: float, count: int) -> float:
    """Reservations per second `count` processes made together, started at one barrier."""
    context = multiprocessing.get_context("spawn")
    start, out = context.Barrier(count + 1), context.Queue()
    children = [
        context.Process(target=_child, args=(spec, seconds, start, out)) for _ in range(count)
    ]
    for child in children:
        child.start()
    start.wait()
    total = sum(out.get(timeout=seconds + 60) for _ in children)
    for child in children:
        child.join()
    return total / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1-s runs")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    seconds = 1.0 if args.quick else args.seconds
    name = f"budget_bench_{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix="volaris-bench-budget-"))

    ensure_database(args.pg_url)
    specs: dict[str, dict[str, str] | None] = {
        "token_bucket": None,
        "memory": {"kind": "memory"},
        "sqlite": {"kind": "sqlite", "path": str(work / "budget.db")},
        "postgresql": {"kind": "postgresql", "url": args.pg_url, "table": name},
    }
    if (problem := redis_reachable(args.redis_url)) is None:
        specs["redis"] = {"kind": "redis", "url": args.redis_url, "prefix": name}
    else:
        print(f"redis skipped: {problem}")

    results: dict[str, dict[str, float]] = {}
    print(f"reservations/s, {seconds:g} s per figure, one provider:")
    print(f"{'store':<14}{'1 process':>12}{'us each':>10}{'direct':>10}{'4 processes':>14}")
    try:
        for label, spec in specs.items():
            one = measure(spec, seconds) / seconds
            direct = measure(spec, seconds, direct=True) / seconds if spec else None
            four = in_processes(spec, seconds, 4)
            results[label] = {
                "one_process_per_s": round(one),
                "us_per_acquire": round(1e6 / one, 1),
                "four_processes_per_s": round(four),
            }
            if direct is not None:
                results[label]["direct_store_per_s"] = round(direct)
            shown = f"{direct:>10,.0f}" if direct is not None else f"{'-':>10}"
            print(f"{label:<14}{one:>12,.0f}{1e6 / one:>10.1f}{shown}{four:>14,.0f}")
    finally:
        for spec in specs.values():
            if spec is not None:
                remove_store(spec)
        shutil.rmtree(work, ignore_errors=True)

    shared = {k: v for k, v in results.items() if k in ("sqlite", "postgresql", "redis")}
    slowest = min(shared, key=lambda k: shared[k]["four_processes_per_s"])
    headroom = shared[slowest]["four_processes_per_s"] / LARGEST_BUDGET_PER_S
    print(
        f"slowest shared store from 4 processes: {slowest}, "
        f"{shared[slowest]['four_processes_per_s']:,}/s = {headroom:.0f}x the largest default "
        f"budget ({LARGEST_BUDGET_PER_S:g}/s, Databento)"
    )
    common.emit({"benchmark": "budget", "seconds": seconds, "stores": results, "slowest": slowest})


if __name__ == "__main__":
    main()
