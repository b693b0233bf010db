import dagster as dg

from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.prices.checks import price_checks
from volaris_assets.scheduling import (
    market_schedule,
    session_key_after_close,
    session_key_during_session,
)

daily_bars_job = dg.define_asset_job(
    "daily_bars_job", selection=[daily_bars], tags={"volaris/capability": "daily"}
)
intraday_bars_job = dg.define_asset_job(
    "intraday_bars_job", selection=[intraday_bars], tags={"volaris/capability": "intraday"}
)

defs = dg.Definitions(
    assets=[daily_bars, intraday_bars],
    asset_checks=price_checks,
    jobs=[daily_bars_job, intraday_bars_job],
    schedules=[
        market_schedule(
            "daily_bars_schedule",
            daily_bars_job,
            "15 17 * * 1-5",
            session_key_after_close,
            "17:15 ET on sessions: the day's bar once the close has settled.",
        ),
        market_schedule(
            "intraday_bars_schedule",
            intraday_bars_job,
            "*/5 9-16 * * 1-5",
            session_key_during_session,
            "Every 5 minutes while the market is open (and once just after the close).",
        ),
    ],
)
