"""Run retries that survive a race in Dagster's retry daemon.

A run whose worker died (the OOM killer) is failed by run monitoring and started again by
`run_retries`. Dagster's `EventLogConsumerDaemon` finds such runs by polling the event log for
RUN_FAILURE events. But `DagsterInstance.handle_new_event` writes the RUN_FAILURE event first and
only then marks the run FAILURE and tags it `dagster/will_retry`. A poll that lands between the
two reads a run that is not failed yet, decides it needs no retry, and moves its cursor past the
event, so the run is never retried. On the small box's SQLite storage, with the daemon's threads
contending for the file, that gap is wide enough to hit: a clean-clone CI run of
`test_small_box.py` saw a killed run tagged `will_retry=true` and no retry 120 s later.

`CatchUpRetries` is Dagster's daemon plus a second look on every iteration: failed runs updated
in the last `CATCH_UP_WINDOW`, tagged `will_retry=true`, that no retry names yet go through
Dagster's own retry function, once each. That function returns without a second run when a
retry exists, so a run the event-log pass already retried is not started twice; and a run it
declines (its backfill has ended) keeps its tag, which is why each run gets one look only:
otherwise it would be declined, with an engine event on the run, every few seconds.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import timedelta

import dagster as dg

from volaris_assets.dagster_internals import (
    AUTO_RETRY_RUN_ID_TAG,
    WILL_RETRY_TAG,
    DagsterDaemon,
    EventLogConsumerDaemon,
    IWorkspaceProcessContext,
    consume_new_runs_for_automatic_reexecution,
    create_daemons_from_instance,
    get_current_datetime,
)

# Long enough for a daemon restart between the failure and the next look; short enough that the
# query stays a handful of rows.
CATCH_UP_WINDOW = timedelta(minutes=30)


def unretried_failures(instance: dg.DagsterInstance) -> list[dg.RunRecord]:
    """Failed runs of the last window that Dagster has decided to retry but has not."""
    records = instance.get_run_records(
        dg.RunsFilter(
            statuses=[dg.DagsterRunStatus.FAILURE],
            tags={WILL_RETRY_TAG: "true"},
            updated_after=get_current_datetime() - CATCH_UP_WINDOW,
        )
    )
    return [r for r in records if AUTO_RETRY_RUN_ID_TAG not in r.dagster_run.tags]


class CatchUpRetries(EventLogConsumerDaemon):
    """Dagster's retry daemon, which also retries the failures its event-log poll missed."""

    def __init__(self) -> None:
        super().__init__()
        # The candidates of the last pass: a run leaves it with its retry or with the window,
        # so the set never holds more than one query's rows.
        self._looked_at: set[str] = set()

    def run_iteration(self, workspace_process_context: IWorkspaceProcessContext) -> Iterator:
        yield from super().run_iteration(workspace_process_context)
        candidates = unretried_failures(workspace_process_context.instance)
        missed = [r for r in candidates if r.dagster_run.run_id not in self._looked_at]
        self._looked_at = {r.dagster_run.run_id for r in candidates}
        if missed:
            self._logger.info(
                "second look at %d failed run(s) marked for retry without one: %s",
                len(missed),
                ", ".join(r.dagster_run.run_id for r in missed),
            )
            yield from consume_new_runs_for_automatic_reexecution(
                workspace_process_context, missed, self._logger
            )


def small_box_daemons(instance: dg.DagsterInstance) -> Sequence[DagsterDaemon]:
    """The daemons `dagster-daemon run` would start for this instance, with `CatchUpRetries`
    in place of Dagster's retry daemon."""
    return [
        CatchUpRetries() if isinstance(daemon, EventLogConsumerDaemon) else daemon
        for daemon in create_daemons_from_instance(instance)
    ]
