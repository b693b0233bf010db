import dagster as dg

from volaris_assets.options.assets import option_chains
from volaris_assets.options.checks import option_checks
from volaris_assets.scheduling import market_schedule, snapshot_key_in_session

option_chains_job = dg.define_asset_job(
    "option_chains_job", selection=[option_chains], tags={"volaris/capability": "chain"}
)

defs = dg.Definitions(
    assets=[option_chains],
    asset_checks=option_checks,
    jobs=[option_chains_job],
    schedules=[
        market_schedule(
            "option_chains_schedule",
            option_chains_job,
            "*/15 9-15 * * 1-5",
            snapshot_key_in_session,
            "Every 15 minutes in regular trading hours (early closes respected).",
        )
    ],
)
