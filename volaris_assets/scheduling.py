"""Market-calendar-aware schedules built from partitioned asset jobs.

A cron alone cannot know that 2026-11-26 is Thanksgiving or that 2026-11-27 closes at 13:00;
each schedule here evaluates its tick against the NYSE calendar, skips closed days with a reason
the UI shows, and requests the partition the tick belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import dagster as dg

from volaris_assets import calendar

KeyForTick = Callable[[datetime], str | None]


def market_schedule(
    name: str,
    job: dg.UnresolvedAssetJobDefinition,
    cron: str,
    key_for: KeyForTick,
    description: str,
) -> dg.ScheduleDefinition:
    """A RUNNING-by-default schedule whose ticks map to partition keys via `key_for`."""

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
        return dg.RunRequest(run_key=f"{name}:{key}", partition_key=key)

    return _schedule


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
