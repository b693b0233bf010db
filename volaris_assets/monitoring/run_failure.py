"""Failed runs to Discord: the error, the asset, the partition and a link to the run.

Shaped like `dagster_slack.make_slack_on_run_failure_sensor` (a factory around
`@run_failure_sensor`); there is no Dagster Discord integration. Crashed runs are re-launched by
Dagster's run retries (`run_retries` in dagster.yaml); this sensor only tells people, and a retry
that succeeds is visible behind the same link.

By default it watches every run of the instance, not only the jobs of its code location: a run
started in-process (`make materialize`, `dg.materialize()`, a script) records no code-location
origin, and Dagster's default matching (the sensor's location == the run's) skips such runs
silently, so their failures were never posted.

Files a failed step links from its failure metadata (a `MetadataValue.path`, e.g. the wheel
scan's per-symbol results CSV when too few symbols were written) are attached when this process
can read them, else named.
"""

from collections.abc import Sequence
from pathlib import Path

import dagster as dg

from volaris_assets.dagster_internals import UnresolvedAssetJobDefinition
from volaris_assets.monitoring.links import run_url
from volaris_assets.notify.embeds import file_attachment
from volaris_assets.redaction import redact
from volaris_assets.resources.notifier import DiscordNotifier, Severity

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
MAX_ERROR_CHARS = 900


def run_partition(run: dg.DagsterRun) -> str | None:
    """The partition (or start..end range) a run targeted, from its tags."""
    tags = run.tags
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG]
    if RANGE_START_TAG in tags:
        return f"{tags[RANGE_START_TAG]}..{tags.get(RANGE_END_TAG, '')}"
    return None


def run_assets(run: dg.DagsterRun, failed_steps: Sequence[str]) -> list[str]:
    """The assets the run targeted, or the failed steps when the run did not record them."""
    selected = run.asset_selection or set()
    checks = run.asset_check_selection or set()
    names = {key.to_user_string() for key in selected}
    names |= {key.asset_key.to_user_string() for key in checks}
    return sorted(names) or sorted(set(failed_steps))


def step_errors(context: dg.RunFailureSensorContext) -> list[tuple[str, str]]:
    """(step, innermost error message) per failed step; the innermost cause is the user error
    (the outer layers are Dagster's "Error occurred while executing op ...")."""
    out = []
    for event in context.get_step_failure_events():
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None and error.cause is not None:
            error = error.cause
        message = error.message.strip() if error is not None else "unknown error"
        out.append((event.step_key or "?", message))
    return out


def failure_files(context: dg.RunFailureSensorContext) -> dict[str, str]:
    """{file name: path} of the files the failed steps linked from their failure metadata."""
    files = {}
    for event in context.get_step_failure_events():
        data = event.step_failure_data.user_failure_data
        for value in (data.metadata if data is not None else {}).values():
            if isinstance(value, dg.PathMetadataValue):
                files[Path(str(value.value)).name] = str(value.value)
    return files


def failure_message(context: dg.RunFailureSensorContext) -> tuple[str, str, dict[str, str]]:
    """Title, description and fields for a failed run; every text goes through redaction."""
    run = context.dagster_run
    errors = step_errors(context)
    assets = run_assets(run, [step for step, _ in errors])
    partition = run_partition(run)
    title = f"Run failed: {run.job_name}"
    if assets:
        title += f" ({', '.join(assets[:3])}{'…' if len(assets) > 3 else ''})"
    detail = "\n".join(f"{step}: {message}" for step, message in errors)
    description = redact(detail or context.failure_event.message or "run failed")
    fields = {"Run": run.run_id[:8], "Job": run.job_name}
    if assets:
        fields["Assets"] = ", ".join(assets)
    if partition:
        fields["Partition"] = partition
    retry = run.tags.get("dagster/retry_number")
    if retry:
        fields["Dagster retry"] = retry
    return title, description[:MAX_ERROR_CHARS], fields


def make_discord_on_run_failure_sensor(
    *,
    name: str = "discord_on_run_failure",
    webserver_base_url: str | None = None,
    monitored_jobs: Sequence[dg.JobDefinition | UnresolvedAssetJobDefinition] | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """A run-failure sensor posting through the `notifier` resource: every failed run of the
    instance, or only `monitored_jobs` when given.

    `webserver_base_url` defaults to `DAGSTER_UI_URL` (read at each tick, so a deployment can set
    it without a code change), then to the local dev UI.
    """

    @dg.run_failure_sensor(
        name=name,
        monitored_jobs=monitored_jobs,
        monitor_all_code_locations=monitored_jobs is None,
        default_status=default_status,
        description="Posts every failed run to Discord with its error, assets, partition and a "
        "link to the run.",
    )
    def _sensor(context: dg.RunFailureSensorContext, notifier: DiscordNotifier) -> None:
        title, description, fields = failure_message(context)
        attachments = {}
        for name, path in failure_files(context).items():
            content = file_attachment(path)
            if content is None:
                fields[name] = path
            else:
                attachments[name] = content
        notifier.notify(
            title,
            description,
            severity=Severity.ERROR,
            fields=fields,
            url=run_url(context.dagster_run.run_id, webserver_base_url),
            dedup_key=f"run-failure:{context.dagster_run.run_id}",
            attachments=attachments or None,
        )

    return _sensor
