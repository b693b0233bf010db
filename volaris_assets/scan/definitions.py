import dagster as dg

from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.checks import scan_checks
from volaris_assets.scheduling import market_schedule, session_key_after_close

wheel_scan_job = dg.define_asset_job(
    "wheel_scan_job", selection=[wheel_premiums], tags={"volaris/capability": "chain"}
)

defs = dg.Definitions(
    assets=[wheel_premiums],
    asset_checks=scan_checks,
    jobs=[wheel_scan_job],
    schedules=[
        market_schedule(
            "wheel_scan_schedule",
            wheel_scan_job,
            "45 16 * * 1-5",
            session_key_after_close,
            "16:45 ET on sessions: the wheel scan over the closing chains.",
        )
    ],
)
