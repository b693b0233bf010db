"""A run launcher that starts each run as a local `dagster api execute_run` process.

Dagster's `DefaultRunLauncher` asks a gRPC code server to start runs, so it needs that server
(~190 MB of its own on this project). The small box (deploy/small-box) loads the code location
inside the daemon instead, and launches runs the way Dagster's Docker and Kubernetes launchers
do: `dagster api execute_run` with the run's `ExecuteRunArgs`, in a fresh process per run,
whose memory goes back to the box when the run ends.

The worker's pid is stored on the run (`volaris/run_worker_pid`), which is what lets the web UI
process (which did not start the worker) terminate it, and the daemon's run monitoring notice a
worker that died without reporting (the OOM killer on a 512 MB box): `check_run_worker_health`
answers FAILED, and `run_retries` starts the run again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

from dagster import DagsterRun, serialize_value

from volaris_assets.dagster_internals import (
    CheckRunHealthResult,
    ConfigurableClass,
    ConfigurableClassData,
    ExecuteRunArgs,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
    get_python_environment_entry_point,
)
from volaris_assets.small_box import light_lane

PID_TAG = light_lane.PID_TAG


def _command_line(pid: int) -> str:
    """The process's command line, or "" when it is gone or a zombie (no cmdline left)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class LocalProcessRunLauncher(RunLauncher, ConfigurableClass):
    """Starts `dagster api execute_run` for each run on this host (Linux: reads /proc)."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        self._inst_data = inst_data
        super().__init__()

    @property
    def inst_data(self) -> ConfigurableClassData | None:
        return self._inst_data

    @classmethod
    def config_type(cls) -> dict[str, Any]:
        return {}

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> Self:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        if light_lane.takes(run):
            light_lane.start(self._instance, run)
            return
        job_origin = run.job_code_origin
        if job_origin is None:
            raise ValueError(f"run {run.run_id} has no code origin: nothing to execute")
        args = ExecuteRunArgs(
            job_origin=job_origin, run_id=run.run_id, instance_ref=self._instance.get_ref()
        )
        # The code location's own interpreter, as `python -m dagster`: the origin's default
        # entry point is a bare `dagster`, which is only right where it is on PATH (containers).
        command = [
            *get_python_environment_entry_point(job_origin.executable_path),
            "api",
            "execute_run",
            serialize_value(args),
        ]
        # A session of its own: a Ctrl-C or SIGTERM aimed at the daemon's process group does
        # not reach a run in flight; the run ends on its own terms or through terminate().
        worker = subprocess.Popen(command, start_new_session=True)
        # Reap the worker as soon as it exits (no zombie waiting for the next health check).
        threading.Thread(target=worker.wait, name=f"reap-{run.run_id}", daemon=True).start()
        self._instance.add_run_tags(run.run_id, {PID_TAG: str(worker.pid)})

    def _worker_alive(self, run: DagsterRun) -> bool | None:
        """True/False when the run's worker is known, None when the run never had one."""
        pid = run.tags.get(PID_TAG)
        if pid is None:
            return None
        # The run id is on the worker's command line; checking it guards against pid reuse.
        return run.run_id in _command_line(int(pid))

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            return False
        if light_lane.on_lane(run):
            self._instance.report_engine_event(
                "A run on the daemon's light lane cannot be stopped; it ends within seconds.",
                run,
                cls=type(self),
            )
            return False
        self._instance.report_run_canceling(run)
        if not self._worker_alive(run):
            self._instance.report_engine_event(
                "No live run worker to send the termination request to.", run, cls=type(self)
            )
            return False
        # `execute_run` turns SIGTERM into an interrupt: the step stops and the run is CANCELED.
        os.kill(int(run.tags[PID_TAG]), signal.SIGTERM)
        return True

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        if light_lane.on_lane(run):
            if light_lane.in_flight(run.run_id):
                return CheckRunHealthResult(WorkerStatus.RUNNING)
            return CheckRunHealthResult(
                WorkerStatus.FAILED, msg="Not running on this daemon's light lane (restarted?)."
            )
        alive = self._worker_alive(run)
        if alive is None:
            return CheckRunHealthResult(WorkerStatus.NOT_FOUND, msg="No run worker pid on the run.")
        if alive:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            msg=f"Run worker (pid {run.tags[PID_TAG]}) exited without finishing the run.",
        )
