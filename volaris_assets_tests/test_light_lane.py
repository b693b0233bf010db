"""The small box's light lane, on a real instance with the small box's coordinator and launcher:
with the one run slot taken, a quotes run submitted in the daemon's process runs at once on a
thread of it (real materialization, simulated market, SQLite warehouse), while any other run
queues; outside the daemon a quotes run queues like any other."""

from __future__ import annotations

import sys
import threading
import time

import dagster as dg
import pytest
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.launcher import WorkerStatus
from dagster._core.workspace.context import WorkspaceProcessContext

from volaris_assets.small_box import light_lane
from volaris_assets.small_box.daemon import LOCATION_NAME, in_process_location
from volaris_assets.small_box.launcher import PID_TAG, LocalProcessRunLauncher
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources

SMALL_BOX = {
    "run_coordinator": {
        "module": "volaris_assets.small_box.light_lane",
        "class": "LaneRunCoordinator",
    },
    "run_launcher": {
        "module": "volaris_assets.small_box.launcher",
        "class": "LocalProcessRunLauncher",
    },
    "concurrency": {"runs": {"max_concurrent_runs": 1}},
}
TERMINAL = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED)


@pytest.fixture
def instance(sqlite_warehouse_url, small_universe, monkeypatch):
    """The small box's instance over a warehouse holding the universe. The code location binds
    its resources from the environment when first imported, as `volaris-daemon` does at start:
    an import left by an earlier test would point the lane's runs at another warehouse."""
    monkeypatch.setenv("DATABASE_URL", sqlite_warehouse_url)
    monkeypatch.delitem(sys.modules, "volaris_assets.definitions", raising=False)
    dg.materialize([sp500_constituents], resources=resources(sqlite_warehouse_url))
    with dg.instance_for_test(overrides=SMALL_BOX) as test_instance:
        yield test_instance


@pytest.fixture
def workspace(instance):
    """The code location loaded in this process, as `volaris-daemon` loads it."""
    with WorkspaceProcessContext(instance, in_process_location()) as context:
        yield context.create_request_context()


@pytest.fixture
def in_daemon(monkeypatch):
    """This process plays `volaris-daemon` (which calls `host_here` at start)."""
    monkeypatch.setattr(light_lane, "_hosted", threading.Event())
    light_lane.host_here()


def create(
    instance: dg.DagsterInstance,
    workspace,
    job_name: str,
    status: dg.DagsterRunStatus | None = None,
) -> dg.DagsterRun:
    """A run of the project's job with both origins, as a schedule tick creates it."""
    location = workspace.get_code_location(LOCATION_NAME)
    repository = next(iter(location.get_repositories().values()))
    remote = repository.get_full_job(job_name)
    definition = (
        ReconstructableRepository.for_module("volaris_assets.definitions", "defs")
        .get_definition()
        .get_job(job_name)
    )
    return instance.create_run_for_job(
        job_def=definition,
        remote_job_origin=remote.get_remote_origin(),
        job_code_origin=remote.get_python_origin(),
        tags=definition.tags,
        status=status,
    )


def submit(instance: dg.DagsterInstance, workspace, job_name: str) -> dg.DagsterRun:
    return instance.submit_run(create(instance, workspace, job_name).run_id, workspace)


def wait_for_end(
    instance: dg.DagsterInstance, run_id: str, timeout_s: float = 120
) -> dg.DagsterRun:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = instance.get_run_by_id(run_id)
        if run is not None and run.status in TERMINAL and not light_lane.in_flight(run_id):
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not end within {timeout_s} s")


def slot_taken(instance: dg.DagsterInstance, workspace) -> None:
    """A chain run in progress: the queue starts nothing else while it lasts."""
    create(instance, workspace, "option_chains_job", dg.DagsterRunStatus.STARTED)


def test_quotes_run_at_once_on_the_daemon_while_the_slot_is_taken(
    instance, workspace, in_daemon, sqlite_warehouse_url
):
    slot_taken(instance, workspace)
    chains = submit(instance, workspace, "option_chains_job")
    quotes = submit(instance, workspace, "quotes_job")

    finished = wait_for_end(instance, quotes.run_id)
    assert finished.status is dg.DagsterRunStatus.SUCCESS
    assert PID_TAG not in finished.tags  # no worker process: a thread of this one
    assert instance.get_run_by_id(chains.run_id).status is dg.DagsterRunStatus.QUEUED
    warehouse = Warehouse(sqlite_warehouse_url)
    try:
        quoted = warehouse.read_frame("SELECT symbol FROM quotes")["symbol"]
    finally:
        warehouse.dispose()
    assert len(quoted) > 0
    # Run monitoring asks the launcher: a lane run this daemon no longer executes is failed
    # (here it ended; after a daemon restart it would be one the new daemon never started).
    launcher = instance.run_launcher
    assert isinstance(launcher, LocalProcessRunLauncher)
    assert launcher.check_run_worker_health(finished).status is WorkerStatus.FAILED


def test_outside_the_daemon_a_quotes_run_queues(instance, workspace):
    slot_taken(instance, workspace)
    quotes = submit(instance, workspace, "quotes_job")
    assert quotes.status is dg.DagsterRunStatus.QUEUED
    assert not light_lane.takes(quotes)
