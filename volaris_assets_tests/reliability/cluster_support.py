"""The cluster layout for real, on this machine: a RabbitMQ virtual host of its own, Celery
workers as process groups, Dagster's instance on PostgreSQL, and which worker ran each step.

Shared by `test_cluster.py` and `bench/bench_cluster.py`. Every worker is a separate process
group started the way deploy/cluster/README.md tells an operator to, so killing one is killing
a host's worker: its connection to RabbitMQ drops and its unacknowledged step is redelivered.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from volaris_assets.cluster.celery_config import BROKER_ENV
from volaris_assets.warehouse.store import normalize_url
from volaris_assets_tests.reliability.processes import start_group, stop_group, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_INSTANCE = ROOT / "deploy" / "cluster" / "dagster.yaml"
BROKER_HOST = "127.0.0.1:5672"
BIN = Path(sys.executable).parent
# The engine event a worker reports when it starts a step, and the metadata naming the worker
# (dagster_celery/tasks.py).
_WORKER_KEY = "Celery worker"


class BrokerUnavailable(RuntimeError):
    """RabbitMQ (or `rabbitmqctl`, to make a virtual host) is not there."""


def _rabbitmqctl(*args: str) -> None:
    command = shutil.which("rabbitmqctl")
    if command is None:
        raise BrokerUnavailable("rabbitmqctl is not installed (apt-get install rabbitmq-server)")
    done = subprocess.run(
        [command, "-q", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if done.returncode != 0:
        raise BrokerUnavailable(f"rabbitmqctl {args[0]} failed: {done.stderr.strip()[-300:]}")


@contextlib.contextmanager
def broker_vhost(label: str = "test") -> Iterator[str]:
    """A RabbitMQ virtual host of its own (guest/guest), deleted with its queues on exit;
    yields the broker URL. Queues of other tests and other users never mix with these."""
    vhost = f"volaris_{label}_{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    try:
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{BROKER_HOST}/{vhost}"
    finally:
        with contextlib.suppress(BrokerUnavailable, subprocess.TimeoutExpired):
            _rabbitmqctl("delete_vhost", vhost)


def dagster_home(path: Path) -> Path:
    """A Dagster home holding deploy/cluster/dagster.yaml as an operator would copy it."""
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(CLUSTER_INSTANCE, path / "dagster.yaml")
    return path


def instance_env(storage_url: str, home: Path) -> dict[str, str]:
    """DAGSTER_HOME and the DAGSTER_PG_* variables deploy/cluster/dagster.yaml reads."""
    url = sa.make_url(storage_url)
    return {
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
    }


def cluster_env(base: Mapping[str, str], broker: str, storage_url: str, home: Path) -> dict:
    """`base` (warehouse, providers) plus the broker and the PostgreSQL instance."""
    return {**base, **instance_env(storage_url, home), BROKER_ENV: broker}


@dataclass
class Worker:
    name: str
    process: subprocess.Popen
    log: Path

    @property
    def hostname(self) -> str:
        """The node name Celery reports (`name@host`), as the step events record it."""
        return f"{self.name}@{os.uname().nodename}"


def start_worker(
    name: str,
    queues: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    concurrency: int = 1,
) -> Worker:
    """`celery -A volaris_assets.cluster.worker worker` on `queues`, as its own process group."""
    log = log_dir / f"worker-{name}.log"
    command = [
        str(BIN / "celery"),
        "-A",
        "volaris_assets.cluster.worker",
        "worker",
        "-Q",
        ",".join(queues),
        "-c",
        str(concurrency),
        "-n",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        # No neighbour discovery at start: it only delays `ready` by a second.
        "--without-mingle",
    ]
    return Worker(name, start_group(command, env, log, cwd=ROOT), log)


def wait_ready(workers: Sequence[Worker], timeout_s: float = 60) -> None:
    for worker in workers:
        wait_for(
            lambda w=worker: (
                " ready." in w.log.read_text(errors="replace") or w.process.poll() is not None
            ),
            timeout_s,
            f"worker {worker.name} ready",
        )
        if worker.process.poll() is not None:
            raise RuntimeError(f"worker {worker.name} exited: {worker.log.read_text()[-2000:]}")


@contextlib.contextmanager
def workers(
    specs: Mapping[str, Sequence[str]], env: Mapping[str, str], log_dir: Path, concurrency: int = 1
) -> Iterator[dict[str, Worker]]:
    """Workers by name (name -> queues), started together, ready, stopped however the block
    ends."""
    started: dict[str, Worker] = {}
    try:
        for name, queues in specs.items():
            started[name] = start_worker(name, queues, env, log_dir, concurrency)
        wait_ready(list(started.values()))
        yield started
    finally:
        for worker in started.values():
            stop_group(worker.process)


def initialize_pools(env: Mapping[str, str]) -> None:
    """The one-time step of deploy/cluster/README.md (volaris_assets.cluster.pools)."""
    done = subprocess.run(
        [sys.executable, "-m", "volaris_assets.cluster.pools"],
        env=dict(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"pools not initialized: {done.stderr[-2000:]}")


def materialize_command(select: str, partition: str) -> list[str]:
    """One partition as one run of the cluster code location (its steps go to the workers)."""
    return [
        str(BIN / "dagster"),
        "asset",
        "materialize",
        "-m",
        "volaris_assets.cluster.definitions",
        "--select",
        select,
        "--partition",
        partition,
    ]


@dataclass(frozen=True)
class StepExecution:
    run_id: str
    step_key: str
    worker: str
    timestamp: float


def step_executions(storage_url: str) -> list[StepExecution]:
    """Every step a Celery worker started, in order, with the worker that ran it (read from
    Dagster's event log in PostgreSQL)."""
    engine = sa.create_engine(normalize_url(storage_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            present = sa.inspect(conn).has_table("event_logs")
            rows = (
                conn.execute(
                    sa.text(
                        "SELECT run_id, step_key, event FROM event_logs "
                        "WHERE dagster_event_type = 'ENGINE_EVENT' AND step_key IS NOT NULL "
                        "AND event LIKE :marker ORDER BY id"
                    ),
                    {"marker": f"%{_WORKER_KEY}%"},
                ).all()
                if present
                else []
            )
    finally:
        engine.dispose()
    executions = []
    for run_id, step_key, event in rows:
        entry = dg.deserialize_value(event, dg.EventLogEntry)
        worker = entry.dagster_event.engine_event_data.metadata.get(_WORKER_KEY)
        if worker is not None:
            executions.append(StepExecution(run_id, step_key, str(worker.value), entry.timestamp))
    return executions


def step_spans(storage_url: str, step_key: str) -> dict[str, tuple[float, float]]:
    """Per run, (start, end) of its successful execution of `step_key`, from its STEP_START and
    STEP_SUCCESS events (the last of each: a step retried after a lost worker starts again)."""
    engine = sa.create_engine(normalize_url(storage_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT run_id, dagster_event_type, max(timestamp) FROM event_logs "
                    "WHERE step_key = :step AND dagster_event_type IN ('STEP_START', "
                    "'STEP_SUCCESS') GROUP BY run_id, dagster_event_type"
                ),
                {"step": step_key},
            ).all()
    finally:
        engine.dispose()
    by_run: dict[str, dict[str, float]] = {}
    for run_id, kind, at in rows:
        by_run.setdefault(run_id, {})[kind] = at.timestamp()
    return {
        run_id: (times["STEP_START"], times["STEP_SUCCESS"])
        for run_id, times in by_run.items()
        if "STEP_SUCCESS" in times
    }
