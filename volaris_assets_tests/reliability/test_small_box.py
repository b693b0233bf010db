"""The 512 MB layout (deploy/small-box) with a real `volaris-daemon`: queued runs start in
worker processes of their own, a run can be terminated from another process (as the web UI
does), and a worker killed from outside (the OOM killer) is noticed by run monitoring, which
fails the run so that `run_retries` starts it again.

Runs fetch chains from Schwab on the sandbox; Schwab's client-side budget (2 requests/s) makes a
run over `SYMBOL_COUNT` symbols last long enough to reach it mid-run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from volaris_assets.dagster_internals import CheckRunHealthResult, WorkerStatus
from volaris_assets.small_box.launcher import PID_TAG, LocalProcessRunLauncher
from volaris_assets.universe.constituents import SP500, index_members
from volaris_assets_tests.reliability.market_setup import (
    SESSION,
    SNAPSHOT,
    materialize_universe,
    subprocess_env,
)
from volaris_assets_tests.reliability.processes import BIN, running, start_group, wait_for

SMALL_BOX = Path(__file__).resolve().parents[2] / "deploy" / "small-box"
SYMBOL_COUNT = 20
TERMINAL = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)
# The malloc settings the daemon applies and passes on (small_box/malloc.py).
SMALL_BOX_MALLOC = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}


@pytest.fixture(scope="module")
def small_box(reliability_sandbox, tmp_path_factory) -> Iterator[tuple[dg.DagsterInstance, dict]]:
    """The small-box instance (run monitoring polled every 2 s instead of 120, a dead run's pool
    slot freed after 1 s instead of 60), its universe written, and `volaris-daemon` running
    over it; shared by the module's tests."""
    tmp_path = tmp_path_factory.mktemp("small_box")
    home = tmp_path / "home"
    home.mkdir()
    config = yaml.safe_load((SMALL_BOX / "dagster.yaml").read_text())
    config["run_monitoring"].update(poll_interval_seconds=2, free_slots_after_run_end_seconds=1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    shutil.copy(SMALL_BOX / "workspace.yaml", tmp_path / "workspace.yaml")
    reliability_sandbox.reset({"latency_ms": "10-40"})
    env = subprocess_env(f"sqlite:///{tmp_path / 'warehouse.db'}", str(home), reliability_sandbox)
    env.pop("MALLOC_ARENA_MAX", None)  # the daemon's own default is under test
    symbols = [m.symbol for m in index_members((SP500,)).members][:SYMBOL_COUNT]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert materialize_universe(env["DATABASE_URL"], symbols, instance).success
        daemon = [sys.executable, "-m", "volaris_assets.small_box.daemon"]
        with running(daemon, env, tmp_path / "daemon.log", cwd=tmp_path) as process:
            yield instance, {**env, "daemon_pid": str(process.pid), "workdir": str(tmp_path)}


def queue(instance: dg.DagsterInstance, workdir: Path, env: dict, job: str, partition: str) -> str:
    """Queue a run of `job` for `partition` the way the UI's launch button does (`dagster job
    launch` submits to the instance's run queue); return its run id."""
    before = {r.run_id for r in instance.get_runs(dg.RunsFilter(job_name=job))}
    command = [
        str(BIN / "dagster"),
        "job",
        "launch",
        "-w",
        str(workdir / "workspace.yaml"),
        "-j",
        job,
        "--tags",
        f'{{"dagster/partition": "{partition}"}}',
    ]
    process = start_group(command, env, workdir / "launch.log")
    assert process.wait(timeout=120) == 0, (workdir / "launch.log").read_text()[-3000:]
    (new,) = {r.run_id for r in instance.get_runs(dg.RunsFilter(job_name=job))} - before
    return new


def launch(instance: dg.DagsterInstance, env: dict) -> dg.DagsterRun:
    """Queue an option_chains run; return it once the daemon has started its worker."""
    run_id = queue(instance, Path(env["workdir"]), env, "option_chains_job", SNAPSHOT)

    def started() -> dg.DagsterRun | None:
        run = instance.get_run_by_id(run_id)
        if run.status == dg.DagsterRunStatus.STARTED and PID_TAG in run.tags:
            return run
        return None

    return wait_for(started, 120, "the daemon to start the run's worker")


def finished(instance: dg.DagsterInstance, run_id: str) -> dg.DagsterRun:
    def done() -> dg.DagsterRun | None:
        run = instance.get_run_by_id(run_id)
        return run if run is not None and run.status in TERMINAL else None

    return wait_for(done, 120, f"run {run_id} to finish")


def test_daemon_holds_the_code_and_runs_start_in_workers(small_box):
    instance, env = small_box
    assert isinstance(instance.run_launcher, LocalProcessRunLauncher)
    run = launch(instance, env)
    worker = int(run.tags[PID_TAG])
    assert worker != int(env["daemon_pid"])
    assert run.run_id in Path(f"/proc/{worker}/cmdline").read_text()
    # The daemon tuned its malloc and passed the settings on (see small_box/malloc.py).
    environ = Path(f"/proc/{worker}/environ").read_text().split("\0")
    assert {f"{name}={value}" for name, value in SMALL_BOX_MALLOC.items()} <= set(environ)

    assert finished(instance, run.run_id).status == dg.DagsterRunStatus.SUCCESS
    # The worker is gone and reaped (no zombie left for the next launch to collect).
    wait_for(lambda: not Path(f"/proc/{worker}").exists(), 10, "the worker to be reaped")
    # No code server anywhere: the daemon's only children were run workers.
    children = Path(f"/proc/{env['daemon_pid']}/task/{env['daemon_pid']}/children").read_text()
    for pid in children.split():
        assert "execute_run" in Path(f"/proc/{pid}/cmdline").read_text()


def test_terminate_from_another_process_cancels_the_run(small_box):
    instance, env = small_box
    run = launch(instance, env)
    # This test process did not start the worker, as the web UI does not: the pid tag is
    # what reaches it.
    assert instance.run_launcher.terminate(run.run_id)
    assert finished(instance, run.run_id).status == dg.DagsterRunStatus.CANCELED
    assert not instance.run_launcher.terminate(run.run_id)  # already finished


def test_killed_worker_is_failed_by_monitoring_and_retried(small_box):
    instance, env = small_box
    run = launch(instance, env)
    os.kill(int(run.tags[PID_TAG]), signal.SIGKILL)  # what the OOM killer does

    # kill() returns before the kernel has torn the worker down; until then it is still
    # running, and monitoring's next poll is the one that sees it gone.
    def failed() -> CheckRunHealthResult | None:
        health = instance.run_launcher.check_run_worker_health(run)
        return health if health.status == WorkerStatus.FAILED else None

    health = wait_for(failed, 10, "the health check to see the killed worker")
    assert run.tags[PID_TAG] in health.msg
    assert finished(instance, run.run_id).status == dg.DagsterRunStatus.FAILURE

    def retry() -> dg.DagsterRun | None:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))
        return runs[0] if runs else None

    try:
        # The daemon's event-log consumer polls every 5 s; 120 s, as for the other waits here,
        # leaves room for a loaded machine (60 s timed out once in a clean-clone CI run).
        retried = wait_for(retry, 120, "run_retries to start the run again")
    except TimeoutError as error:
        tags = instance.get_run_by_id(run.run_id).tags
        retry_tags = {k: v for k, v in tags.items() if "retry" in k}
        log = (Path(env["workdir"]) / "daemon.log").read_text().splitlines()[-40:]
        raise AssertionError(
            f"{error}; the run's retry tags: {retry_tags}; daemon.log:\n" + "\n".join(log)
        ) from error
    assert finished(instance, retried.run_id).status == dg.DagsterRunStatus.SUCCESS


def test_an_operators_malloc_settings_are_kept():
    """Unset, the small box's values are applied and exported; set (in the unit), the
    operator's are kept, in force and in what the workers inherit."""
    probe = (
        "import json, os\n"
        "from volaris_assets.small_box.malloc import tune_malloc\n"
        "in_force = tune_malloc()\n"
        "print(json.dumps([in_force, {k: os.environ[k] for k in in_force}]))"
    )
    operators = {"MALLOC_ARENA_MAX": "4", "MALLOC_MMAP_THRESHOLD_": "65536"}
    for preset in ({}, operators):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
        done = subprocess.run(
            [sys.executable, "-c", probe], env=env | preset, capture_output=True, text=True
        )
        expected = SMALL_BOX_MALLOC | preset
        assert json.loads(done.stdout) == [expected, expected], done.stderr


def test_health_check_is_not_fooled_by_a_reused_pid():
    """A pid tag naming a live process that is not the run's worker reads as a dead worker."""
    launcher = LocalProcessRunLauncher()
    run = dg.DagsterRun(job_name="noop", tags={PID_TAG: str(os.getpid())})
    assert launcher.check_run_worker_health(run).status == WorkerStatus.FAILED
    untagged = dg.DagsterRun(job_name="noop")
    assert launcher.check_run_worker_health(untagged).status == WorkerStatus.NOT_FOUND


def test_intraday_bars_go_before_a_chain_run_queued_first(reliability_sandbox, tmp_path):
    """The one run slot goes to the 5-minute bars before a chain snapshot that fell due at the
    same moment (`dagster/priority` on intraday_bars_job): both are queued before the daemon
    starts, the chain run first, and the bars run starts first all the same."""
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(SMALL_BOX / "dagster.yaml", home / "dagster.yaml")
    shutil.copy(SMALL_BOX / "workspace.yaml", tmp_path / "workspace.yaml")
    env = subprocess_env(f"sqlite:///{tmp_path / 'warehouse.db'}", str(home), reliability_sandbox)
    symbols = [m.symbol for m in index_members((SP500,)).members][:SYMBOL_COUNT]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert materialize_universe(env["DATABASE_URL"], symbols, instance).success
        chains = queue(instance, tmp_path, env, "option_chains_job", SNAPSHOT)
        bars = queue(instance, tmp_path, env, "intraday_bars_job", SESSION)
        daemon = [sys.executable, "-m", "volaris_assets.small_box.daemon"]
        with running(daemon, env, tmp_path / "daemon.log", cwd=tmp_path):
            for run_id in (bars, chains):
                assert finished(instance, run_id).status == dg.DagsterRunStatus.SUCCESS
        records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
        assert records[bars].end_time <= records[chains].start_time
