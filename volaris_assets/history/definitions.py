"""The history domain: compaction to the cold tier and retention, each on a schedule after the
close, and the cold files' check."""

from datetime import datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets import settings as settings_module
from volaris_assets.history.assets import operational_retention, option_history
from volaris_assets.history.checks import history_checks
from volaris_assets.scheduling import WEEKDAYS, KeyForTick, daily_at, market_schedule
from volaris_assets.settings import Settings

option_history_job = dg.define_asset_job("option_history_job", selection=[option_history])
retention_job = dg.define_asset_job("operational_retention_job", selection=[operational_retention])


def session_leaving_hot_window(hot_sessions: int) -> KeyForTick:
    """The tick's key function: the session that leaves the hot window once today's has closed
    (today's itself when one session is kept hot)."""

    def key_for(tick: datetime) -> str | None:
        day = tick.astimezone(calendar.NY).date()
        if not calendar.is_session(day) or calendar.session(day).close > tick:
            return None
        for _ in range(hot_sessions - 1):
            day = calendar.previous_session(day).day
        return day.isoformat()

    return key_for


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """Compaction of the session leaving the hot window, and retention, after the close."""
    at = settings.history_time
    return [
        daily_at(
            "option_history_schedule",
            option_history_job,
            at,
            "VOLARIS_HISTORY_TIME, VOLARIS_HOT_SESSIONS",
            session_leaving_hot_window(settings.hot_sessions),
            "option snapshots of the session leaving the hot window compacted to Parquet",
        ),
        market_schedule(
            "operational_retention_schedule",
            retention_job,
            f"{at.minute} {at.hour} * * {WEEKDAYS}",
            session_leaving_hot_window(1),
            f"{at:%H:%M} ET on sessions: operational rows past their retention windows deleted "
            "(VOLARIS_HISTORY_TIME, VOLARIS_RETAIN_*_DAYS).",
            partitioned=False,
        ),
    ]


defs = dg.Definitions(
    assets=[option_history, operational_retention],
    asset_checks=history_checks,
    jobs=[option_history_job, retention_job],
    schedules=schedules(settings_module.load()),
)
