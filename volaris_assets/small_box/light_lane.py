"""The small box's light lane: short runs executed on a thread of `volaris-daemon` itself.

The 512 MB box has one run slot: a second run worker would cost ~220 MB it does not have. With
the 60-s quotes refresh in the same queue as the option chains (minutes at Schwab's 120/min),
a quote waited behind every chain run, and with it every price alert (bench_day measured 261 s
from a cross to its alert). A run tagged `volaris/lane: light` (the quotes job) therefore does
not queue: submitted by the daemon (its schedule ticks there), it starts at once on a thread of
the daemon, which already holds the code location, so it costs a few MB and no new interpreter.
A light run queued elsewhere (a launch from the web UI) waits in the queue like any other and
goes on the light lane when the daemon takes it from there.

What a thread cannot do, and why that is acceptable for a run of seconds: it cannot be sent
SIGTERM (the UI's Terminate answers that it cannot stop it; the run ends on its own a few
seconds later), and it dies with the daemon (run monitoring then finds it not running here and
fails it, and the next tick refreshes the quotes).
"""

from __future__ import annotations

import logging
import os
import threading

from dagster import DagsterInstance, DagsterRun, QueuedRunCoordinator, SubmitRunContext

from volaris_assets.dagster_internals import core_execute_run, recon_job_from_origin

# The tag holding a run worker's pid, set by `launcher`; defined here because the launcher
# imports this module, not the other way round.
PID_TAG = "volaris/run_worker_pid"
LANE_TAG = "volaris/lane"
LIGHT = "light"
LIGHT_LANE_TAGS = {LANE_TAG: LIGHT}

logger = logging.getLogger(__name__)

_hosted = threading.Event()
_in_flight: set[str] = set()
_lock = threading.Lock()


def host_here() -> None:
    """Called by `volaris-daemon` at start: light runs submitted in this process run here."""
    _hosted.set()


def takes(run: DagsterRun) -> bool:
    """Whether `run` goes on the light lane of this process."""
    return _hosted.is_set() and run.tags.get(LANE_TAG) == LIGHT


def on_lane(run: DagsterRun) -> bool:
    """Whether `run` was started on a light lane (it has no worker process of its own)."""
    return run.tags.get(LANE_TAG) == LIGHT and PID_TAG not in run.tags


def in_flight(run_id: str) -> bool:
    """Whether this process is executing `run_id` on its light lane now."""
    with _lock:
        return run_id in _in_flight


def start(instance: DagsterInstance, run: DagsterRun) -> None:
    """Execute `run` on a thread of its own in this process."""
    with _lock:
        _in_flight.add(run.run_id)
    threading.Thread(
        target=_execute, args=(instance, run.run_id), name=f"light-{run.run_id}", daemon=True
    ).start()


def _execute(instance: DagsterInstance, run_id: str) -> None:
    try:
        run = instance.get_run_by_id(run_id)
        if run is None or run.job_code_origin is None:
            raise ValueError(f"run {run_id} is gone or has no code origin")
        instance.report_engine_event(
            f"Started on the light lane of the daemon (pid {os.getpid()}).", run
        )
        # The run's events and its failure, if any, are written to the event log as it goes.
        job = recon_job_from_origin(run.job_code_origin)
        for _ in core_execute_run(job, run, instance, inject_env_vars=False):
            pass
    except Exception:  # noqa: BLE001 - a run's failure must never reach the daemon's threads
        logger.exception("light-lane run %s ended with an error", run_id)
    finally:
        with _lock:
            _in_flight.discard(run_id)


class LaneRunCoordinator(QueuedRunCoordinator):
    """Dagster's run queue, except that a light run submitted by the daemon starts at once on
    its light lane instead of waiting for the one run slot."""

    def submit_run(self, context: SubmitRunContext) -> DagsterRun:
        run = context.dagster_run
        if not takes(run):
            return super().submit_run(context)
        return self._instance.launch_run(run.run_id, context.workspace)
