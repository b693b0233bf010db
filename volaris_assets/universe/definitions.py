import dagster as dg

from volaris_assets import settings as settings_module
from volaris_assets.settings import Settings
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.universe.checks import universe_checks
from volaris_assets.universe.profiles import company_profiles

universe_job = dg.define_asset_job(
    "universe_job",
    selection=[sp500_constituents, scan_universe, company_profiles],
    description="Refresh the S&P 500 constituents and the scan universe, then the stocks' "
    "sectors from VOLARIS_PROFILE_PROVIDERS when one is set.",
)


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The weekly universe refresh, at the configured cron (not calendar-gated: the index
    lists do not depend on the session)."""
    return [
        dg.ScheduleDefinition(
            name="universe_weekly_schedule",
            job=universe_job,
            cron_schedule=settings.universe_cron,
            execution_timezone="America/New_York",
            default_status=dg.DefaultScheduleStatus.RUNNING,
            description=f"Refresh the universes at cron `{settings.universe_cron}` ET "
            "(VOLARIS_UNIVERSE_CRON; default Mondays 06:00, before the week's first session).",
        )
    ]


defs = dg.Definitions(
    assets=[sp500_constituents, scan_universe, company_profiles],
    asset_checks=universe_checks,
    jobs=[universe_job],
    schedules=schedules(settings_module.load()),
)
