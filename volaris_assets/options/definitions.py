import dagster as dg

from volaris_assets import settings as settings_module
from volaris_assets.options.assets import option_chains
from volaris_assets.options.checks import option_checks
from volaris_assets.scheduling import SNAPSHOT_HOURS, every, snapshot_key_in_session
from volaris_assets.settings import Settings

option_chains_job = dg.define_asset_job(
    "option_chains_job", selection=[option_chains], tags={"volaris/capability": "chain"}
)


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The chain snapshot schedule at the configured cadence."""
    return [
        every(
            "option_chains_schedule",
            option_chains_job,
            settings.option_chain_interval_min * 60,
            "OPTION_CHAIN_JOB_INTERVAL_MINUTES",
            snapshot_key_in_session,
            "Option-chain snapshots in regular trading hours (early closes respected).",
            hours=SNAPSHOT_HOURS,
        )
    ]


defs = dg.Definitions(
    assets=[option_chains],
    asset_checks=option_checks,
    jobs=[option_chains_job],
    schedules=schedules(settings_module.load()),
)
