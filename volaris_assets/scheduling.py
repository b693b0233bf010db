"""Market-calendar-aware schedules built from partitioned asset jobs, at configured cadences.

A cron alone cannot know that 2026-11-26 is Thanksgiving or that 2026-11-27 closes at 13:00;
each schedule here evaluates its tick against the NYSE calendar, skips closed days with a reason
the UI shows, and requests the partition the tick belongs to.

Cadences are configuration (the settings model's "Schedules" group): `every()` and `daily_at()`
turn a validated interval or time of day into the cron, and into a description that names the
variable, so the UI says both how often a job runs and what to set to change it. The validators
below are what the settings model runs on those variables: Dagster schedules tick on whole
minutes, so an interval that does not divide the hour would drift across it and is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, time

import dagster as dg

from volaris_assets import calendar
from volaris_assets.dagster_internals import UnresolvedAssetJobDefinition

KeyForTick = Callable[[datetime], str | None]
# Why a tick in market hours is not worth a run yet (None: it is), from the instance, the
# partition key the tick maps to and the tick.
Precondition = Callable[[dg.DagsterInstance, str, datetime], str | None]

# Hours (ET) in which intraday ticks fall; `key_for` then keeps only the ticks in a session.
TRADING_HOURS = "9-16"
# Snapshot-partitioned jobs: the last window of a regular session starts at 15:45.
SNAPSHOT_HOURS = "9-15"
WEEKDAYS = "1-5"
# A run in one of these states has not finished: a refresh requested now would queue behind it.
IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def market_schedule(
    name: str,
    job: UnresolvedAssetJobDefinition,
    cron: str,
    key_for: KeyForTick,
    description: str,
    *,
    partitioned: bool = True,
    skip_while_running: bool = False,
    precondition: Precondition | None = None,
) -> dg.ScheduleDefinition:
    """A RUNNING-by-default schedule whose ticks map to partition keys via `key_for`.

    An unpartitioned job (`partitioned=False`) still skips the ticks `key_for` refuses; the key
    then only names the run. `skip_while_running` is for refreshes of the latest state (quotes):
    while this schedule's previous run is unfinished a new one would only queue behind it and
    fetch the same moment twice, so the tick is skipped and the next one catches up.
    `precondition` skips a tick whose run could only fail, with its reason (the data it reads
    is not there yet).
    """

    @dg.schedule(
        name=name,
        job=job,
        cron_schedule=cron,
        execution_timezone="America/New_York",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=description,
    )
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        tick = context.scheduled_execution_time or datetime.now(calendar.UTC)
        key = key_for(tick.astimezone(calendar.UTC))
        if key is None:
            return dg.SkipReason(f"market closed at {tick.isoformat()}")
        if skip_while_running and (running := _unfinished_run(context.instance, name)):
            return dg.SkipReason(
                f"the previous run ({running}) is still in flight; the next tick refreshes"
            )
        if precondition and (unmet := precondition(context.instance, key, tick)):
            return dg.SkipReason(unmet)
        return dg.RunRequest(run_key=f"{name}:{key}", partition_key=key if partitioned else None)

    return _schedule


def _unfinished_run(instance: dg.DagsterInstance, schedule_name: str) -> str | None:
    """The id of a run this schedule requested that has not finished, if there is one."""
    records = instance.get_run_records(
        dg.RunsFilter(tags={"dagster/schedule_name": schedule_name}, statuses=IN_FLIGHT), limit=1
    )
    return records[0].dagster_run.run_id if records else None


def snapshot_key_in_session(tick: datetime) -> str | None:
    """The 15-minute snapshot taken at `tick`, if the market is open then."""
    return calendar.snapshot_key(tick) if calendar.session_at(tick) else None


def session_key_during_session(tick: datetime, grace_minutes: int = 5) -> str | None:
    """The session in progress at `tick` (or closed within the grace period, for its last bars)."""
    day = tick.astimezone(calendar.NY).date()
    if not calendar.is_session(day):
        return None
    current = calendar.session(day)
    closing = current.close.timestamp() + grace_minutes * 60
    return day.isoformat() if current.open <= tick and tick.timestamp() <= closing else None


def session_key_after_close(tick: datetime) -> str | None:
    """Today's session, if today is one and it has closed by `tick`."""
    day = tick.astimezone(calendar.NY).date()
    if not calendar.is_session(day) or calendar.session(day).close > tick:
        return None
    return day.isoformat()


def every(
    name: str,
    job: UnresolvedAssetJobDefinition,
    seconds: int,
    variable: str,
    key_for: KeyForTick,
    what: str,
    *,
    hours: str = TRADING_HOURS,
    offset_minutes: int = 0,
    partitioned: bool = True,
    skip_while_running: bool = False,
    precondition: Precondition | None = None,
) -> dg.ScheduleDefinition:
    """A market schedule ticking every `seconds` (validated by `interval_seconds` or
    `interval_minutes`) on weekdays within `hours`, `offset_minutes` into each interval.

    `variable` is the setting `seconds` came from; the description shows it with its value.
    """
    cron = interval_cron(seconds, hours=hours, offset_minutes=offset_minutes)
    description = f"{what} Every {_duration(seconds)} ({variable}={_value(variable, seconds)})."
    return market_schedule(
        name,
        job,
        cron,
        key_for,
        description,
        partitioned=partitioned,
        skip_while_running=skip_while_running,
        precondition=precondition,
    )


def daily_at(
    name: str,
    job: UnresolvedAssetJobDefinition,
    at: time,
    variables: str,
    key_for: KeyForTick,
    what: str,
) -> dg.ScheduleDefinition:
    """A market schedule ticking once each weekday at `at` (ET); `variables` names the
    setting(s) `at` came from, shown in the description."""
    cron = f"{at.minute} {at.hour} * * {WEEKDAYS}"
    return market_schedule(
        name, job, cron, key_for, f"{at:%H:%M} ET on sessions: {what} ({variables})."
    )


def interval_cron(seconds: int, *, hours: str = TRADING_HOURS, offset_minutes: int = 0) -> str:
    """The weekday cron of an interval that divides the hour: 300 -> `*/5 9-16 * * 1-5`."""
    minutes = seconds // 60
    if minutes == 60:
        field = str(offset_minutes)
    elif offset_minutes:
        field = f"{offset_minutes}-59/{minutes}"
    else:
        field = "*" if minutes == 1 else f"*/{minutes}"
    return f"{field} {hours} * * {WEEKDAYS}"


def interval_seconds(text: str, floor_s: int = 60) -> int:
    """A settings validator: whole seconds, at least `floor_s`, in whole minutes that divide
    the hour (60, 120, 300, 900, 1800, 3600...)."""
    seconds = _whole_number(text)
    if seconds < floor_s:
        raise ValueError(f"is below the {floor_s} s minimum")
    if seconds % 60 or 3600 % seconds:
        raise ValueError("is not a whole number of minutes that divides the hour")
    return seconds


def interval_minutes(text: str, step: int = 1) -> int:
    """A settings validator: whole minutes, a multiple of `step` (a partition's width) that
    divides the hour."""
    minutes = _whole_number(text)
    if minutes < step or minutes % step:
        raise ValueError(f"is not a multiple of {step} minutes")
    if 60 % minutes:
        raise ValueError("does not divide the hour")
    return minutes


def time_of_day(text: str, earliest: time = time(16, 0)) -> time:
    """A settings validator: HH:MM (ET), not before `earliest` (the regular close, for the
    after-close jobs: before it, the session's last data does not exist yet)."""
    try:
        value = time.fromisoformat(text)
    except ValueError:
        raise ValueError("not a time of day HH:MM") from None
    if value.second or value.microsecond:
        raise ValueError("has seconds; schedules tick on whole minutes")
    if value < earliest:
        raise ValueError(f"is before {earliest:%H:%M} ET")
    return value


def cron(text: str) -> str:
    """A settings validator: a five-field cron string Dagster accepts (a schedule built on it
    is the public way to ask)."""
    if len(text.split()) != 5:
        raise ValueError("not a five-field cron expression")
    try:
        dg.ScheduleDefinition(name="cron_probe", cron_schedule=text, job_name="cron_probe")
    except dg.DagsterInvalidDefinitionError:
        raise ValueError("not a five-field cron expression") from None
    return text


def _whole_number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError("not a whole number") from None


def _duration(seconds: int) -> str:
    return f"{seconds // 3600} h" if seconds % 3600 == 0 else f"{seconds // 60} min"


def _value(variable: str, seconds: int) -> int:
    """The variable's value in its own unit (`*_SECONDS` or `*_MINUTES`)."""
    return seconds if variable.endswith("SECONDS") else seconds // 60
