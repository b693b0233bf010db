from datetime import time

import dagster as dg

from volaris_assets import settings as settings_module
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.prices.checks import price_checks
from volaris_assets.scheduling import (
    daily_at,
    every,
    session_key_after_close,
    session_key_during_session,
)
from volaris_assets.settings import Settings

daily_bars_job = dg.define_asset_job(
    "daily_bars_job", selection=[daily_bars], tags={"volaris/capability": "daily"}
)
# First in the run queue: when a 5-minute bars tick and a 15-minute chain snapshot fall due
# together on a box with one run slot, the bars run (under a minute) goes before the chain run
# (minutes on Schwab's budget) instead of waiting it out and missing its next tick. Dagster's
# queue dequeues by `dagster/priority`, highest first; it never stops a run already going.
intraday_bars_job = dg.define_asset_job(
    "intraday_bars_job",
    selection=[intraday_bars],
    tags={"volaris/capability": "intraday", "dagster/priority": "1"},
)


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The bar schedules at the configured cadences."""
    return [
        daily_at(
            "daily_bars_schedule",
            daily_bars_job,
            time(settings.eod_sync_hour, settings.eod_sync_minute),
            "EOD_SYNC_CRON_HOUR, EOD_SYNC_CRON_MINUTE",
            session_key_after_close,
            "the day's bar once the close has settled",
        ),
        every(
            "intraday_bars_schedule",
            intraday_bars_job,
            settings.five_minute_interval_s,
            "FIVE_MINUTE_JOB_INTERVAL_SECONDS",
            session_key_during_session,
            "1-minute bars while the market is open (and once just after the close).",
        ),
    ]


defs = dg.Definitions(
    assets=[daily_bars, intraday_bars],
    asset_checks=price_checks,
    jobs=[daily_bars_job, intraday_bars_job],
    schedules=schedules(settings_module.load()),
)
