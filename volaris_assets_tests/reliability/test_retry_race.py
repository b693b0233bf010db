"""The small box's retry daemon retries a killed run even when Dagster's event-log poll lands
between the RUN_FAILURE event and the run's FAILURE status (small_box/retries.py).

The race is real (a clean-clone CI run of test_small_box.py hit it) but rare, so the test puts
the poll in the gap on purpose: the instance's event storage runs one daemon iteration right
after it has stored the RUN_FAILURE event, as a daemon thread polling at that moment would.
Everything else is Dagster's own code path: `report_run_failed`, the daemon, its retry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from volaris_assets.dagster_internals import (
    WILL_RETRY_TAG,
    EventLogConsumerDaemon,
    InProcessCodeLocationOrigin,
    InProcessWorkspaceLoadTarget,
    LoadableTargetOrigin,
    WorkspaceProcessContext,
    create_daemons_from_instance,
)
from volaris_assets.small_box.retries import CatchUpRetries, small_box_daemons

SMALL_BOX = Path(__file__).resolve().parents[2] / "deploy" / "small-box" / "dagster.yaml"
LOCATION = "retry_race"


@dg.op
def noop() -> None:
    """The failed run's only step."""


defs = dg.Definitions(jobs=[dg.GraphDefinition(name="noop_job", node_defs=[noop]).to_job()])


@pytest.fixture
def workspace(tmp_path) -> Iterator[WorkspaceProcessContext]:
    """A SQLite instance with run retries on (queued, so a retry waits in the queue) and this
    module as its code location."""
    overrides = {
        "run_retries": {"enabled": True, "max_retries": 1},
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
        },
    }
    origin = LoadableTargetOrigin(python_file=__file__, attribute="defs")
    target = InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(origin, location_name=LOCATION)
    )
    with dg.instance_for_test(overrides=overrides, temp_dir=str(tmp_path)) as instance:
        with WorkspaceProcessContext(instance, target) as context:
            yield context


def started_run(
    context: WorkspaceProcessContext, tags: dict[str, str] | None = None
) -> dg.DagsterRun:
    """A run of the location's job, as far as a worker that is then killed gets it."""
    location = context.create_request_context().get_code_location(LOCATION)
    remote_job = location.get_repository("__repository__").get_full_job("noop_job")
    return context.instance.create_run_for_job(
        defs.get_job_def("noop_job"),
        status=dg.DagsterRunStatus.STARTED,
        tags=tags,
        remote_job_origin=remote_job.get_remote_origin(),
        job_code_origin=remote_job.get_python_origin(),
    )


def fail_with_a_poll_in_the_gap(
    context: WorkspaceProcessContext, daemon: EventLogConsumerDaemon, run: dg.DagsterRun
) -> None:
    """Fail the run as run monitoring does, with one daemon iteration right after the
    RUN_FAILURE event is stored and before the run is marked FAILURE."""
    storage = context.instance.event_log_storage
    store_event = storage.store_event

    def store_then_poll(event: dg.EventLogEntry) -> None:
        store_event(event)
        if event.dagster_event_type == dg.DagsterEventType.RUN_FAILURE:
            assert context.instance.get_run_by_id(run.run_id).status != (
                dg.DagsterRunStatus.FAILURE
            ), "the poll is meant to land before the status changes"
            list(daemon.run_iteration(context))

    storage.store_event = store_then_poll
    try:
        context.instance.report_run_failed(run, "worker killed (SIGKILL)")
    finally:
        del storage.store_event


def retries_of(instance: dg.DagsterInstance, run: dg.DagsterRun) -> list[dg.DagsterRun]:
    return instance.get_runs(dg.RunsFilter(tags={"dagster/parent_run_id": run.run_id}))


def race(context: WorkspaceProcessContext, daemon: EventLogConsumerDaemon) -> dg.DagsterRun:
    """A killed run whose failure the daemon's poll caught mid-write, after three more polls."""
    list(daemon.run_iteration(context))  # the daemon's cursors start at the log's end
    run = started_run(context)
    fail_with_a_poll_in_the_gap(context, daemon, run)
    failed = context.instance.get_run_by_id(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert failed.tags[WILL_RETRY_TAG] == "true"
    for _ in range(3):
        list(daemon.run_iteration(context))
    return run


def test_dagsters_own_daemon_still_loses_the_retry(workspace):
    """The race CatchUpRetries exists for. If this fails, Dagster has fixed it: check its
    changelog, and CatchUpRetries can go."""
    run = race(workspace, EventLogConsumerDaemon())
    assert retries_of(workspace.instance, run) == []


def test_the_small_box_daemon_retries_the_run_once(workspace):
    run = race(workspace, CatchUpRetries())
    [retry] = retries_of(workspace.instance, run)
    assert retry.status == dg.DagsterRunStatus.QUEUED
    assert retry.tags["dagster/retry_number"] == "1"


def test_a_run_retried_in_the_usual_way_is_not_retried_again(workspace):
    daemon = CatchUpRetries()
    list(daemon.run_iteration(workspace))
    run = started_run(workspace)
    workspace.instance.report_run_failed(run, "worker killed (SIGKILL)")
    for _ in range(3):
        list(daemon.run_iteration(workspace))
    assert len(retries_of(workspace.instance, run)) == 1


def test_a_run_dagster_declines_to_retry_is_looked_at_once(workspace):
    """A backfill's run whose backfill is gone keeps `will_retry=true`, and Dagster declines it
    with an engine event each time it is asked: the event-log pass once, the second look once."""
    daemon = CatchUpRetries()
    list(daemon.run_iteration(workspace))
    run = started_run(workspace, tags={"dagster/backfill": "deleted"})
    workspace.instance.report_run_failed(run, "worker killed (SIGKILL)")
    for _ in range(4):
        list(daemon.run_iteration(workspace))
    declined = [
        record
        for record in workspace.instance.all_logs(run.run_id)
        if "backfill that no longer exists" in (record.message or "")
    ]
    assert retries_of(workspace.instance, run) == []
    assert len(declined) == 2


def test_the_small_box_runs_dagsters_daemons_with_only_the_retry_daemon_swapped(tmp_path):
    (tmp_path / "dagster.yaml").write_text(SMALL_BOX.read_text())
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert yaml.safe_load(SMALL_BOX.read_text())["run_retries"]["enabled"]
        stock = [type(d) for d in create_daemons_from_instance(instance)]
        ours = [type(d) for d in small_box_daemons(instance)]
    assert EventLogConsumerDaemon in stock
    assert ours == [CatchUpRetries if t is EventLogConsumerDaemon else t for t in stock]
