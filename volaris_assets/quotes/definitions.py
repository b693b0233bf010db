"""The quotes domain: the asset, its check, and a schedule at REALTIME_JOB_INTERVAL_SECONDS."""

from datetime import datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets import settings as settings_module
from volaris_assets.quotes.assets import quotes
from volaris_assets.quotes.checks import quote_checks
from volaris_assets.scheduling import every
from volaris_assets.settings import Settings
from volaris_assets.small_box.light_lane import LIGHT_LANE_TAGS

# Light: on the small box the refresh runs on the daemon's light lane, never behind a chain run.
quotes_job = dg.define_asset_job(
    "quotes_job",
    selection=[quotes],
    tags={"volaris/capability": "intraday", **LIGHT_LANE_TAGS},
)


def minute_in_session(tick: datetime) -> str | None:
    """The tick's minute while the market is open (each tick's run gets a key of its own)."""
    return f"{tick:%Y-%m-%dT%H:%M}" if calendar.session_at(tick) else None


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The quote refresh at the configured cadence, in market hours."""
    return [
        every(
            "quotes_schedule",
            quotes_job,
            settings.realtime_interval_s,
            "REALTIME_JOB_INTERVAL_SECONDS",
            minute_in_session,
            "Latest quotes of the S&P 500, the ETFs and every symbol with a price alert while "
            "the market is open; a tick is skipped while the previous refresh is in flight.",
            partitioned=False,
            skip_while_running=True,
        )
    ]


defs = dg.Definitions(
    assets=[quotes],
    asset_checks=quote_checks,
    jobs=[quotes_job],
    schedules=schedules(settings_module.load()),
)
