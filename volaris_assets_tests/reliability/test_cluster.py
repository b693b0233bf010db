"""The cluster layout, run for real: RabbitMQ, two Celery workers, Dagster on PostgreSQL.

Worker `a` takes provider-bound fetches (and untagged steps), worker `b` those and the
CPU-bound compute queue. A backfill of option-chain snapshots runs as one run per partition
(`dagster asset materialize` of the cluster code location, each run's step and its checks
sent to the workers), then the session's IV metrics, which only `b` may run. Then a chain
snapshot whose worker is SIGKILLed mid-step: RabbitMQ hands the step to the other worker, the
run succeeds, and the warehouse equals that of clean in-process runs of the same partitions.

Chains come from Schwab's wire format on the sandbox, paced by Schwab's budget (2 requests/s),
which every worker draws from the PostgreSQL warehouse: a step of 6 symbols takes ~3 s, long
enough to kill its worker half-way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from volaris_assets.cluster.queues import COMPUTE_QUEUE, DEFAULT_QUEUE, FETCH_QUEUE
from volaris_assets.options.assets import option_chains
from volaris_assets.universe.constituents import SP500, index_members
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, normalize_url
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.reliability.cluster_support import (
    BrokerUnavailable,
    Worker,
    broker_vhost,
    cluster_env,
    dagster_home,
    initialize_pools,
    materialize_command,
    step_executions,
    workers,
)
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import (
    SESSION,
    SNAPSHOT,
    materialize_universe,
    sandbox_resources,
    subprocess_env,
)
from volaris_assets_tests.reliability.processes import kill_group, running, wait_for
from volaris_assets_tests.reliability.warehouse_state import assert_same_state, warehouse_state

SYMBOLS = [m.symbol for m in index_members((SP500,)).members][:6]
BACKFILL = ["2026-03-11-10:30", "2026-03-11-10:45"]
TABLES = ("tickers", "option_contracts", "option_snapshots", "iv_metrics")
RUN_TIMEOUT_S = 180
# Whole runs as processes on a 2-core machine others may be loading: generous.
pytestmark = pytest.mark.timeout(600)


@dataclass
class Cluster:
    warehouse: str
    reference: str
    storage: str
    env: dict[str, str]
    workers: dict[str, Worker]
    logs: Path

    def run(self, select: str, partitions: list[str]) -> None:
        """One run per partition, all at once; each must succeed."""
        with contextlib.ExitStack() as stack:
            runs = [
                (
                    stack.enter_context(
                        running(materialize_command(select, key), self.env, self.log(key))
                    ),
                    key,
                )
                for key in partitions
            ]
            for process, key in runs:
                assert process.wait(timeout=RUN_TIMEOUT_S) == 0, self.log(key).read_text()[-3000:]

    def log(self, partition: str) -> Path:
        return self.logs / f"run-{partition.replace(':', '')}.log"

    def reference_run(self, asset: dg.AssetsDefinition, key: str, sandbox, instance) -> None:
        """The same partition, in process (no Celery), into the reference warehouse."""
        result = dg.materialize(
            [asset],
            resources=sandbox_resources(sandbox, self.reference),
            instance=instance,
            partition_key=key,
        )
        assert result.success


def _universes(urls: list[str]) -> None:
    for url in urls:
        with dg.instance_for_test() as instance:
            assert materialize_universe(url, SYMBOLS, instance).success


@pytest.fixture(scope="module")
def cluster(reliability_sandbox, tmp_path_factory) -> Iterator[Cluster]:
    server = postgres_url()
    logs = tmp_path_factory.mktemp("cluster")
    with contextlib.ExitStack() as stack:
        try:
            broker = stack.enter_context(broker_vhost("cluster"))
        except BrokerUnavailable as error:
            if os.environ.get("CI"):
                pytest.fail(f"RabbitMQ required under CI: {error}")
            pytest.skip(str(error))
        warehouse, reference, storage = (
            stack.enter_context(scratch_database(server, label))
            for label in ("clwh", "clref", "cldag")
        )
        home = dagster_home(logs / "home")
        env = cluster_env(
            subprocess_env(warehouse, str(home), reliability_sandbox), broker, storage, home
        )
        with ThreadPoolExecutor(2) as pool:
            # The universes are written and the pools created while the workers start.
            universes = pool.submit(_universes, [warehouse, reference])
            pools = pool.submit(initialize_pools, env)
            specs = {
                "a": [FETCH_QUEUE, DEFAULT_QUEUE],
                "b": [FETCH_QUEUE, COMPUTE_QUEUE, DEFAULT_QUEUE],
            }
            started = stack.enter_context(workers(specs, env, logs))
            universes.result()
            pools.result()
        yield Cluster(warehouse, reference, storage, env, started, logs)


def test_backfill_runs_spread_over_workers(cluster, reliability_sandbox, instance):
    reliability_sandbox.reset()
    cluster.run("option_chains", BACKFILL)
    cluster.run("iv_metrics", [SESSION])
    for key in BACKFILL:
        cluster.reference_run(option_chains, key, reliability_sandbox, instance)
    cluster.reference_run(iv_metrics, SESSION, reliability_sandbox, instance)

    executions = step_executions(cluster.storage)
    backfill_runs = {e.run_id for e in executions if e.step_key == "option_chains"}
    assert len(backfill_runs) == len(BACKFILL)
    # Each run's step and its four checks went to whichever worker was free: both were.
    assert {e.worker for e in executions if e.run_id in backfill_runs} == {
        w.hostname for w in cluster.workers.values()
    }, executions
    assert [e.worker for e in executions if e.step_key == "iv_metrics"] == [
        cluster.workers["b"].hostname
    ], "the compute step went to a worker without the compute queue"
    assert_same_state(warehouse_state(cluster.warehouse, TABLES), _reference(cluster))


def test_killed_worker_step_runs_on_the_other(cluster, reliability_sandbox, instance):
    reliability_sandbox.reset({"latency_ms": "100-200"})
    by_host = {w.hostname: w for w in cluster.workers.values()}
    command = materialize_command("option_chains", SNAPSHOT)
    with running(command, cluster.env, cluster.log(SNAPSHOT)) as run:
        started = wait_for(
            lambda: [e for e in step_executions(cluster.storage) if _is_snapshot_step(e, cluster)],
            60,
            "the snapshot step on a worker",
            0.05,
        )
        wait_for(lambda: _outcomes(cluster.warehouse) >= 2, 60, "2 symbols written", 0.05)
        victim = by_host[started[0].worker]
        kill_group(victim.process)
        assert _outcomes(cluster.warehouse) < len(SYMBOLS), "the kill did not land mid-step"
        assert run.wait(timeout=RUN_TIMEOUT_S) == 0, cluster.log(SNAPSHOT).read_text()[-3000:]

    ran_on = [e.worker for e in step_executions(cluster.storage) if _is_snapshot_step(e, cluster)]
    assert ran_on[0] == victim.hostname and ran_on[-1] != victim.hostname, ran_on
    cluster.reference_run(option_chains, SNAPSHOT, reliability_sandbox, instance)
    assert _outcomes(cluster.warehouse) == len(SYMBOLS)
    assert_same_state(warehouse_state(cluster.warehouse, TABLES), _reference(cluster))


def _reference(cluster: Cluster):
    return warehouse_state(cluster.reference, TABLES)


def _is_snapshot_step(execution, cluster: Cluster) -> bool:
    return execution.step_key == "option_chains" and execution.run_id in _snapshot_runs(cluster)


def _snapshot_runs(cluster: Cluster) -> set[str]:
    """The runs of the snapshot partition (Dagster's run tags)."""
    engine = sa.create_engine(normalize_url(cluster.storage), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT run_id FROM run_tags WHERE key = 'dagster/partition' AND value = :key"
                ),
                {"key": SNAPSHOT},
            ).all()
    finally:
        engine.dispose()
    return {row[0] for row in rows}


def _outcomes(url: str) -> int:
    """Symbols of the snapshot partition with an outcome row (whichever run wrote it)."""
    results = tables.sync_stock_results
    warehouse = Warehouse(url)
    try:
        with warehouse.engine.connect() as conn:
            return conn.execute(
                sa.select(sa.func.count(sa.distinct(results.c.symbol))).where(
                    results.c.asset == "option_chains", results.c.partition == SNAPSHOT
                )
            ).scalar_one()
    finally:
        warehouse.dispose()
