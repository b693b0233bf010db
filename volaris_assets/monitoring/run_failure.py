"""Failed runs to Discord: the error, the asset, the partition and a link to the run.

Shaped like `dagster_slack.make_slack_on_run_failure_sensor` (a factory around
`@run_failure_sensor`); there is no Dagster Discord integration. Crashed runs are re-launched by
Dagster's run retries (`run_retries` in dagster.yaml); this sensor only tells people, and a retry
that succeeds is visible behind the same link.

By default it watches every run of the instance, not only the jobs of its code location: a run
started in-process (`make materialize`, `dg.materialize()`, a script) records no code-location
origin, and Dagster's default matching (the sensor's location == the run's) skips such runs
silently, so their failures were never posted.

A `@run_failure_sensor` moves its cursor past a run whatever its function did, so a message
Discord refused (a 5xx, a 429 past the retries, a timeout) would be lost: the run is tagged
`volaris/discord: pending` instead, and `discord_run_failure_retry` posts it again every minute
until Discord takes it (tag `sent`; `skipped` once no webhook is set), or gives up after a
day (tag `expired`, logged). The tag
shows in the UI beside the run.

Files a failed step links from its failure metadata (a `MetadataValue.path`, e.g. the wheel
scan's per-symbol results CSV when too few symbols were written) are attached when this process
can read them, else named.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import dagster as dg

from volaris_assets.dagster_internals import UnresolvedAssetJobDefinition
from volaris_assets.monitoring.links import run_url
from volaris_assets.notify.embeds import file_attachment
from volaris_assets.redaction import redact
from volaris_assets.resources.notifier import DiscordNotifier, Sent, Severity

PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
MAX_ERROR_CHARS = 900
DISCORD_TAG = "volaris/discord"
PENDING, SENT, SKIPPED, EXPIRED = "pending", "sent", "skipped", "expired"
RETRY_INTERVAL_S = 60
DELIVERY_TTL_S = 24 * 3600
MAX_RETRIED_PER_TICK = 10


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


@dataclass(frozen=True)
class FailedRun:
    """What a failure message is made of, read from the instance: the sensor's own context
    and the retry sensor, which has only the run, build it the same way."""

    run: dg.DagsterRun
    step_failures: list[dg.DagsterEvent]
    message: str | None  # the run's own failure (a run can fail outside any step)

    @classmethod
    def of(cls, instance: dg.DagsterInstance, run: dg.DagsterRun) -> Self:
        def events(kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
            entries = instance.all_logs(run.run_id, of_type=kind)
            return [entry.dagster_event for entry in entries if entry.dagster_event]

        run_failures = events(dg.DagsterEventType.RUN_FAILURE)
        message = _run_failure_text(run_failures[-1]) if run_failures else None
        return cls(run, events(dg.DagsterEventType.STEP_FAILURE), message)


def _run_failure_text(event: dg.DagsterEvent) -> str | None:
    """A run that failed outside any step (a broker gone, a code server lost) says only
    "An exception was thrown during execution"; its error's innermost cause says what."""
    error = event.job_failure_data.error if event.job_failure_data else None
    while error is not None and error.cause is not None:
        error = error.cause
    if error is None:
        return event.message
    return f"{event.message}\n{error.message.strip()}"


def step_errors(failed: FailedRun) -> list[tuple[str, str]]:
    """(step, innermost error message) per failed step; the innermost cause is the user error
    (the outer layers are Dagster's "Error occurred while executing op ...")."""
    out = []
    for event in failed.step_failures:
        error = event.event_specific_data.error if event.event_specific_data else None
        while error is not None and error.cause is not None:
            error = error.cause
        message = error.message.strip() if error is not None else "unknown error"
        out.append((event.step_key or "?", message))
    return out


def failure_files(failed: FailedRun) -> dict[str, str]:
    """{file name: path} of the files the failed steps linked from their failure metadata."""
    files = {}
    for event in failed.step_failures:
        data = event.step_failure_data.user_failure_data
        for value in (data.metadata if data is not None else {}).values():
            if isinstance(value, dg.PathMetadataValue):
                files[Path(str(value.value)).name] = str(value.value)
    return files


def failure_message(failed: FailedRun) -> tuple[str, str, dict[str, str]]:
    """Title, description and fields for a failed run; every text goes through redaction."""
    run = failed.run
    errors = step_errors(failed)
    assets = run_assets(run, [step for step, _ in errors])
    partition = run_partition(run)
    title = f"Run failed: {run.job_name}"
    if assets:
        title += f" ({', '.join(assets[:3])}{'…' if len(assets) > 3 else ''})"
    detail = "\n".join(f"{step}: {message}" for step, message in errors)
    description = redact(detail or failed.message or "run failed")
    fields = {"Run": run.run_id[:8], "Job": run.job_name}
    if assets:
        fields["Assets"] = ", ".join(assets)
    if partition:
        fields["Partition"] = partition
    retry = run.tags.get("dagster/retry_number")
    if retry:
        fields["Dagster retry"] = retry
    return title, description[:MAX_ERROR_CHARS], fields


def post_failure(notifier: DiscordNotifier, failed: FailedRun, base_url: str | None) -> Sent:
    """Post the failed run's message, its linked files attached when this process can read
    them (else named)."""
    title, description, fields = failure_message(failed)
    attachments = {}
    for name, path in failure_files(failed).items():
        content = file_attachment(path)
        if content is None:
            fields[name] = path
        else:
            attachments[name] = content
    return notifier.send(
        title,
        description,
        severity=Severity.ERROR,
        fields=fields,
        url=run_url(failed.run.run_id, base_url),
        dedup_key=f"run-failure:{failed.run.run_id}",
        attachments=attachments or None,
    )


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
        failed = FailedRun.of(context.instance, context.dagster_run)
        if post_failure(notifier, failed, webserver_base_url) is Sent.FAILED:
            context.instance.add_run_tags(context.dagster_run.run_id, {DISCORD_TAG: PENDING})

    return _sensor


def make_run_failure_retry_sensor(
    *,
    name: str = "discord_run_failure_retry",
    webserver_base_url: str | None = None,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.RUNNING,
) -> dg.SensorDefinition:
    """Every minute, post the failed runs tagged pending again, oldest first; the first that
    fails again ends the tick (Discord is still down, and each try can take the notifier's
    whole retry budget)."""

    @dg.sensor(
        name=name,
        minimum_interval_seconds=RETRY_INTERVAL_S,
        default_status=default_status,
        description="Posts again the failed runs whose Discord message failed (tag "
        f"{DISCORD_TAG}: {PENDING}), until Discord takes it or a day has passed.",
    )
    def _retry(context: dg.SensorEvaluationContext, notifier: DiscordNotifier) -> dg.SkipReason:
        instance = context.instance
        records = instance.get_run_records(
            filters=dg.RunsFilter(tags={DISCORD_TAG: PENDING}),
            limit=MAX_RETRIED_PER_TICK,
            ascending=True,
        )
        done: list[str] = []
        expired = 0
        for record in records:
            run = record.dagster_run
            ended = record.end_time or record.create_timestamp.timestamp()
            if time.time() - ended > DELIVERY_TTL_S:
                instance.add_run_tags(run.run_id, {DISCORD_TAG: EXPIRED})
                expired += 1
                context.log.warning(
                    "run %s's failure was not delivered to Discord within a day; given up",
                    run.run_id[:8],
                )
                continue
            sent = post_failure(notifier, FailedRun.of(instance, run), webserver_base_url)
            if sent is Sent.FAILED:
                break
            instance.add_run_tags(
                run.run_id, {DISCORD_TAG: SKIPPED if sent is Sent.SKIPPED else SENT}
            )
            done.append(f"{run.run_id[:8]} ({sent})")
        pending = len(records) - len(done) - expired
        return dg.SkipReason(f"posted again: {', '.join(done) or 'none'}; still pending: {pending}")

    return _retry
