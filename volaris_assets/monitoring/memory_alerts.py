"""A run past its memory threshold, to Discord once.

The run itself logs the warning and tags itself `volaris/memory_warning_mb` the moment it passes
`VOLARIS_MEMORY_WARN_MB` (`ingest/memory.py`); this sensor finds tagged runs (those launched by
the daemon and those run in-process, `make materialize`, alike: the tag is on the instance) and
posts each once, while the run may still be going: the point is to hear before the OOM killer.
"""

import json
import time
from datetime import UTC, datetime

import dagster as dg

from volaris_assets.ingest.memory import MEMORY_TAG
from volaris_assets.monitoring.links import run_url
from volaris_assets.monitoring.run_failure import run_partition
from volaris_assets.resources.notifier import DiscordNotifier, Severity

INTERVAL_S = 30
LOOKBACK_S = 6 * 3600.0
# Runs updated within the lookback that are read per tick (newest first); the tag's value is
# the MB figure, which a tag filter cannot match on, so tagged runs are picked out here.
RUNS_PER_TICK = 200
REMEMBERED_RUNS = 200


def memory_message(run: dg.DagsterRun) -> tuple[str, str, dict[str, str]]:
    mb = run.tags[MEMORY_TAG]
    title = f"Memory warning: {run.job_name} at {mb} MB"
    description = (
        f"The run's process passed VOLARIS_MEMORY_WARN_MB ({mb} MB when it did). The system "
        "this replaces was killed at ~470 MB on a 512 MB box. Set VOLARIS_TRACEMALLOC_TOP=15 "
        "to record where the memory goes (metadata `top_allocations`)."
    )
    fields = {"Run": run.run_id[:8], "Job": run.job_name, "Status": run.status.value}
    partition = run_partition(run)
    if partition:
        fields["Partition"] = partition
    return title, description, fields


@dg.sensor(
    name="memory_warning_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts to Discord, once per run, when a run passes VOLARIS_MEMORY_WARN_MB.",
)
def memory_warning_sensor(
    context: dg.SensorEvaluationContext, notifier: DiscordNotifier
) -> dg.SkipReason:
    posted = json.loads(context.cursor) if context.cursor else []
    since = datetime.fromtimestamp(time.time() - LOOKBACK_S, UTC)
    records = context.instance.get_run_records(
        filters=dg.RunsFilter(updated_after=since), limit=RUNS_PER_TICK
    )
    sent = []
    for record in records:
        run = record.dagster_run
        if MEMORY_TAG not in run.tags or run.run_id in posted:
            continue
        title, description, fields = memory_message(run)
        notifier.notify(
            title,
            description,
            severity=Severity.WARNING,
            fields=fields,
            url=run_url(run.run_id),
            dedup_key=f"memory:{run.run_id}",
        )
        posted = [*posted, run.run_id][-REMEMBERED_RUNS:]
        sent.append(run.run_id[:8])
    context.update_cursor(json.dumps(posted))
    return dg.SkipReason(f"memory warnings posted: {', '.join(sent) or 'none'}")
