import dagster as dg

from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.universe.checks import universe_checks

universe_job = dg.define_asset_job(
    "universe_job",
    selection=[sp500_constituents, scan_universe],
    description="Refresh the S&P 500 constituents and the scan universe.",
)

universe_schedule = dg.ScheduleDefinition(
    name="universe_weekly_schedule",
    job=universe_job,
    cron_schedule="0 6 * * 1",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Mondays 06:00 ET, before the week's first session.",
)

defs = dg.Definitions(
    assets=[sp500_constituents, scan_universe],
    asset_checks=universe_checks,
    jobs=[universe_job],
    schedules=[universe_schedule],
)
