import dagster as dg

from volaris_assets import settings as settings_module
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.checks import scan_checks
from volaris_assets.scheduling import daily_at, session_key_after_close
from volaris_assets.settings import Settings

wheel_scan_job = dg.define_asset_job(
    "wheel_scan_job", selection=[wheel_premiums], tags={"volaris/capability": "chain"}
)


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The wheel scan schedule at the configured time."""
    return [
        daily_at(
            "wheel_scan_schedule",
            wheel_scan_job,
            settings.wheel_scan_time,
            "VOLARIS_WHEEL_SCAN_TIME",
            session_key_after_close,
            "the wheel scan over the closing chains",
        )
    ]


defs = dg.Definitions(
    assets=[wheel_premiums],
    asset_checks=scan_checks,
    jobs=[wheel_scan_job],
    schedules=schedules(settings_module.load()),
)
