"""Budget stores for tests and benchmarks, and a worker process that spends one budget.

A store is described by a JSON-able spec ({"kind": "sqlite", "path": ...}, {"kind":
"postgresql", "url": ..., "table": ...}, {"kind": "redis", "url": ..., "prefix": ...}) so that
a child process can open the very same budget. The worker (`python -m
volaris_assets_tests.budget_support SPEC RUN`) opens it, says "ready", waits for the start time
on stdin, acquires in a loop until the run ends and prints the wall-clock time of each grant as
JSON. This module imports neither Dagster nor pytest, so a worker starts in a fraction of a
second.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from volaris_assets.providers.budget import (
    BudgetConfig,
    Limit,
    Priority,
    ProviderBudget,
    open_budget,
)
from volaris_assets.providers.budget.fallback import Failover, MemoryStore, Tier
from volaris_assets.providers.budget.store import Store

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("VOLARIS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

Spec = dict[str, str]


def redis_reachable(url: str = REDIS_URL) -> str | None:
    """None when the Redis at `url` answers PING, else why not."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"{type(error).__name__}: {error}"
    finally:
        client.close()
    return None


def open_store(spec: Spec) -> Store:
    if spec["kind"] == "sqlite":
        from volaris_assets.providers.budget.sqlite import SqliteStore

        return SqliteStore(Path(spec["path"]), timeout_s=float(spec.get("timeout_s", 2.0)))
    if spec["kind"] == "postgresql":
        from volaris_assets.providers.budget.postgres import PostgresStore

        return PostgresStore(spec["url"], table=spec["table"])
    if spec["kind"] == "redis":
        from volaris_assets.providers.budget.redis import RedisStore

        return RedisStore(spec["url"], prefix=spec["prefix"])
    if spec["kind"] == "memory":
        return MemoryStore()
    raise ValueError(f"unknown store kind {spec['kind']!r}")


def remove_store(spec: Spec) -> None:
    """Drop what a test's store left behind: the PostgreSQL table or the Redis keys."""
    if spec["kind"] == "postgresql":
        import sqlalchemy as sa

        from volaris_assets.warehouse.urls import normalize_url

        engine = sa.create_engine(normalize_url(spec["url"]))
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP TABLE IF EXISTS "{spec["table"]}"')
        engine.dispose()
    elif spec["kind"] == "redis":
        import redis

        client = redis.Redis.from_url(spec["url"])
        keys = list(client.scan_iter(match=f"{{{spec['prefix']}}}:*"))
        if keys:
            client.delete(*keys)
        client.close()


def budget_on(
    spec: Spec, limits: dict[str, Limit], *, bulk_slack_s: float = 1.0, retry_s: float = 15.0
) -> ProviderBudget:
    """A budget on the store `spec` describes, with memory at half the pace behind it; or, for
    {"kind": "config", ...}, the budget `open_budget` makes of that configuration (REDIS_URL,
    DATABASE_URL, VOLARIS_BUDGET_FILE, VOLARIS_BUDGET_HOSTS, VOLARIS_BUDGET_PROCESSES)."""
    if spec["kind"] == "config":
        return open_budget(limits, BudgetConfig.from_env(spec))
    tiers = [Tier(open_store(spec), 1.0, True), Tier(MemoryStore(), 0.5, False)]
    return ProviderBudget(limits, Failover(tiers, retry_s), bulk_slack_s=bulk_slack_s)


@dataclass(frozen=True)
class Run:
    """What each worker does: `priority` requests to `provider` at `rate`/`burst` for
    `seconds` from the start time it is given."""

    provider: str
    rate: float
    burst: float
    seconds: float
    priority: Priority = "fresh"


async def _spend(budget: ProviderBudget, run: Run, start: float) -> list[float]:
    await asyncio.sleep(max(0.0, start - time.time()))
    granted: list[float] = []
    while time.time() < start + run.seconds:
        await budget.acquire(run.provider, run.priority)
        granted.append(time.time())
    return granted


def worker(spec: Spec, run: Run) -> None:
    budget = budget_on(spec, {run.provider: Limit(run.rate, run.burst)})
    budget.snapshot()  # connects, and creates the table or file, before the start
    print("ready", flush=True)
    start = float(sys.stdin.readline())
    granted = asyncio.run(_spend(budget, run, start))
    shared = all(state.shared for state in budget.snapshot())
    budget.close()
    print(json.dumps({"granted": granted, "shared": shared}), flush=True)


class Workers:
    """`count` worker processes spending one budget together, started at the same instant."""

    def __init__(self, spec: Spec, run: Run, count: int) -> None:
        command = [sys.executable, "-m", "volaris_assets_tests.budget_support"]
        command += [json.dumps(spec), json.dumps(asdict(run))]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._processes = [
            subprocess.Popen(
                command, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(count)
        ]

    def start(self, delay_s: float = 0.3) -> float:
        """Wait until every worker is ready and tell them all to start in `delay_s`."""
        for process in self._processes:
            assert process.stdout is not None
            line = process.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"budget worker failed to start: {line!r}")
        start = time.time() + delay_s
        for process in self._processes:
            assert process.stdin is not None
            process.stdin.write(f"{start!r}\n")
            process.stdin.flush()
        return start

    def results(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        found = []
        for process in self._processes:
            out, _ = process.communicate(timeout=timeout_s)
            if process.returncode != 0:
                raise RuntimeError(f"budget worker exited with {process.returncode}")
            found.append(json.loads(out.strip().splitlines()[-1]))
        return found

    def kill(self) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def most_in_window(times: Sequence[float], window_s: float) -> int:
    """The largest number of `times` inside any closed window `window_s` long."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] > window_s:
            first += 1
        most = max(most, last - first + 1)
    return most


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]), Run(**json.loads(sys.argv[2])))
