import dagster as dg

from volaris_assets.scheduling import market_schedule, session_key_after_close
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.volatility.checks import volatility_checks

iv_metrics_job = dg.define_asset_job(
    "iv_metrics_job", selection=[iv_metrics], tags={"volaris/capability": "chain"}
)

defs = dg.Definitions(
    assets=[iv_metrics],
    asset_checks=volatility_checks,
    jobs=[iv_metrics_job],
    schedules=[
        market_schedule(
            "iv_metrics_schedule",
            iv_metrics_job,
            "30 16 * * 1-5",
            session_key_after_close,
            "16:30 ET on sessions, from the day's last option-chain snapshot.",
        )
    ],
)
