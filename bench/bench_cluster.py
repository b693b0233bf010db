"""The cluster layout on 1 and 2 Celery workers: a CPU-bound backfill, a provider-bound one.

    python -m bench.bench_cluster [--sessions 4] [--symbols 20] [--windows 4] [--rate 1]

Everything real, on this machine: RabbitMQ (a virtual host of its own), Dagster's storage and
the warehouse on PostgreSQL (fresh databases), `celery -A volaris_assets.cluster.worker` workers
as process groups, one `dagster asset materialize` run per partition (partitions as runs).

CPU-bound: `iv_metrics` for `--sessions` past sessions of `--symbols` symbols on the simulated
market (each session's chains replayed, validated with implied volatilities solved for every
contract, then the metrics): all runs are submitted first, with no worker up, then W workers
of one slot each start on the compute queue; timed from the first step's start to the last
one's end (Dagster's event log), so the runs' own start-up is not in it. W = 1, then W = 2:
`cpu_speedup_2_over_1` is the ratio. Baseline in the same run: the W = 1 span.

Provider-bound: an `option_chains` backfill of `--windows` snapshot windows through Schwab's
wire format on the sandbox (in this process), the sandbox refusing beyond `--rate` requests/s
(a sliding window of 10 s) and the clients' budget set to the same rate, on 2 workers of 2
fetch slots each: every slot of every worker spends the one budget in the PostgreSQL warehouse.
`budget_over_limit` is the most requests the sandbox saw in any 10 s over 10 x rate. The rate
is low (1/s) so that the budget, not this machine's CPU, bounds the backfill: at 5/s four
chain steps validating and writing ~430 contracts a symbol on 2 shared cores fell short of the
budget (0.72 of it), which says nothing about whether the budget holds.

`rows_lost`: iv_metrics rows missing out of sessions x symbols, plus option-snapshot rows a
clean in-process run of the same windows (into its own database) has and the cluster's lacks.

The machine has 2 cores shared with whatever else runs (`load_avg_1m` is recorded): two
one-slot workers can at best halve a CPU-bound span. On an idle machine the second worker gets
the second core, less what the run processes, RabbitMQ and PostgreSQL use meanwhile. On a
loaded one (load average well above 2) the kernel shares the cores between all runnable
processes, so a second worker mostly buys a second share of them: a speed-up near 2 there is a
share of a contended machine, not a second core. More hosts add cores; the ratio measures the
executor's ability to use them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from bench.common import emit, machine
from volaris_assets import calendar
from volaris_assets.cluster.queues import COMPUTE_QUEUE, DEFAULT_QUEUE, FETCH_QUEUE
from volaris_assets.options.assets import option_chains
from volaris_assets.sandbox.limits import RateLimit
from volaris_assets.sandbox.server import start_sandbox
from volaris_assets.universe.constituents import SP500, index_members
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.reliability.cluster_support import (
    broker_vhost,
    cluster_env,
    dagster_home,
    initialize_pools,
    materialize_command,
    step_executions,
    step_spans,
    workers,
)
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import (
    AS_OF,
    materialize_universe,
    sandbox_resources,
    subprocess_env,
)
from volaris_assets_tests.reliability.processes import start_group, stop_group, wait_for
from volaris_assets_tests.reliability.warehouse_state import state_differences, warehouse_state

SERVER = os.environ.get("VOLARIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
WINDOW_S = 10.0


def sessions_before(day: str, count: int) -> list[str]:
    """`count` sessions ending the session before `day`."""
    found = calendar.sessions_between(
        calendar.session_day("2026-01-02"), calendar.session_day(day)
    )[:-1]
    return [s.day.isoformat() for s in found[-count:]]


def submitted(storage: str, step: str, runs: int) -> bool:
    """Whether `runs` runs have sent `step` to the broker (their engine events say so)."""
    engine = sa.create_engine(Warehouse(storage).url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("event_logs"):
                return False
            count = conn.execute(
                sa.text(
                    "SELECT count(*) FROM event_logs WHERE step_key = :step AND "
                    "dagster_event_type = 'ENGINE_EVENT' AND event LIKE '%Submitting celery%'"
                ),
                {"step": step},
            ).scalar_one()
    finally:
        engine.dispose()
    return count >= runs


def cpu_span(env: dict, sessions: list[str], count: int, logs: Path, storage: str, before: int):
    """Submit every session's run (`before` were submitted earlier), then start `count` compute
    workers; (span from the first step start to the last step end, the runs' exit codes)."""
    runs = [
        start_group(materialize_command("iv_metrics", day), env, logs / f"iv-{count}-{day}.log")
        for day in sessions
    ]
    names = [f"cpu{count}-{i}" for i in range(count)]
    try:
        wait_for(
            lambda: submitted(storage, "iv_metrics", before + len(sessions)),
            600,
            "every iv_metrics run submitted",
            0.5,
        )
        with workers({name: [COMPUTE_QUEUE, DEFAULT_QUEUE] for name in names}, env, logs):
            codes = [run.wait(timeout=1800) for run in runs]
    finally:
        for run in runs:
            stop_group(run)
    mine = {
        e.run_id
        for e in step_executions(storage)
        if e.step_key == "iv_metrics" and e.worker.split("@")[0] in names
    }
    spans = [span for run_id, span in step_spans(storage, "iv_metrics").items() if run_id in mine]
    return max(end for _, end in spans) - min(start for start, _ in spans), codes


def row_count(url: str, table: str) -> int:
    warehouse = Warehouse(url)
    try:
        return int(warehouse.read_frame(f"SELECT count(*) AS n FROM {table}")["n"].iloc[0])
    finally:
        warehouse.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--windows", type=int, default=4)
    parser.add_argument("--rate", type=int, default=1)
    args = parser.parse_args()
    symbols = [m.symbol for m in index_members((SP500,)).members][: args.symbols]
    sessions = sessions_before("2026-03-11", args.sessions)
    # From 10:15 ET on: the sandbox's clock is 11:00 ET (AS_OF), and a live chain stands for
    # a window at most 45 trading minutes behind its provider's clock (providers/live_chains.py).
    windows = [
        f"2026-03-11-{10 + (i + 1) // 4:02d}:{15 * ((i + 1) % 4):02d}" for i in range(args.windows)
    ]
    logs = Path(tempfile.mkdtemp(prefix="volaris-bench-cluster-"))

    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(broker_vhost("bench"))
        warehouse, reference, storage = (
            stack.enter_context(scratch_database(SERVER, label))
            for label in ("bcwh", "bcref", "bcdag")
        )
        sandbox = stack.enter_context(start_sandbox(as_of=AS_OF, seed=7))
        instance = stack.enter_context(dg.instance_for_test())
        for url in (warehouse, reference):
            assert materialize_universe(url, symbols, instance).success
        home = dagster_home(logs / "home")
        base = subprocess_env(warehouse, str(home), sandbox)
        env = cluster_env(base, broker, storage, home)
        initialize_pools(env)

        # CPU-bound: the simulated market, no provider budget involved.
        simulated = {**env, "VOLARIS_CHAIN_PROVIDERS": "simulated"}
        spans, codes = {}, []
        for count in (1, 2):
            before = len(sessions) * (count - 1)
            spans[count], ran = cpu_span(simulated, sessions, count, logs, storage, before)
            codes += ran
        iv_lost = len(sessions) * len(symbols) - row_count(warehouse, "iv_metrics")

        # Provider-bound: Schwab on the sandbox at `rate`/s, the budget shared by every slot.
        # Counted per 10 s like a provider's per-minute quota: a 1-s window refuses the jitter
        # of requests that left on time (measured: 429s paused the shared budget to ~0.35/s).
        limit = RateLimit(args.rate * int(WINDOW_S), WINDOW_S)
        sandbox.reset()
        sandbox.set_rate_limit("schwab", limit)
        rate_limits = f"schwab={args.rate}/1:1"
        fetch_env = {**env, "VOLARIS_RATE_LIMITS": rate_limits}
        specs = {f"fetch-{i}": [FETCH_QUEUE, DEFAULT_QUEUE] for i in range(2)}
        started = time.perf_counter()
        with workers(specs, fetch_env, logs, concurrency=2):
            runs = [
                start_group(
                    materialize_command("option_chains", key),
                    fetch_env,
                    logs / f"chain-{key.replace(':', '')}.log",
                )
                for key in windows
            ]
            codes += [run.wait(timeout=1800) for run in runs]
        provider_wall = time.perf_counter() - started
        busiest = sandbox.stats.busiest("schwab", WINDOW_S)
        fetch_workers = {
            e.worker for e in step_executions(storage) if e.step_key == "option_chains"
        }
        for key in windows:
            assert dg.materialize(
                [option_chains],
                resources=sandbox_resources(sandbox, reference, rate_limits=rate_limits),
                instance=instance,
                partition_key=key,
            ).success
        tables = ("option_snapshots",)
        differences = state_differences(
            warehouse_state(warehouse, tables), warehouse_state(reference, tables)
        )
    emit(
        {
            "bench": "cluster",
            "workers": 2,
            "cpu_speedup_2_over_1": round(spans[1] / spans[2], 3),
            "cpu_span_s": {"1": round(spans[1], 2), "2": round(spans[2], 2)},
            "cpu_runs": f"iv_metrics x {len(sessions)} sessions x {len(symbols)} symbols",
            "budget_over_limit": round(busiest / (args.rate * WINDOW_S), 3),
            "busiest_10s_requests": busiest,
            "limit_per_s": args.rate,
            "provider_runs": f"option_chains x {len(windows)} windows x {len(symbols)} symbols",
            "provider_wall_s": round(provider_wall, 1),
            "fetch_workers_used": len(fetch_workers),
            "rows_lost": iv_lost + sum(differences.values()),
            "runs_failed": sum(code != 0 for code in codes),
            "machine": machine(),
            # Kept only when a run failed, to read why.
            **({"logs": str(logs)} if any(codes) else {}),
        }
    )
    if not any(codes):
        shutil.rmtree(logs, ignore_errors=True)


if __name__ == "__main__":
    main()
