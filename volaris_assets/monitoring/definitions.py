"""The platform watching itself: freshness, check and run-failure alerts, memory warnings, symbol
retries, the scan summary, the Schwab token warning and the morning digest."""

import dagster as dg

from volaris_assets import settings
from volaris_assets.monitoring.check_alerts import make_check_failure_sensor
from volaris_assets.monitoring.digest import daily_digest_job, daily_digest_schedule
from volaris_assets.monitoring.freshness import freshness_alert_sensor
from volaris_assets.monitoring.gap_fill import gap_fill_job, make_gap_fill_schedule
from volaris_assets.monitoring.memory_alerts import memory_warning_sensor
from volaris_assets.monitoring.retry import RetryTarget, make_retry_failed_symbols_sensor
from volaris_assets.monitoring.run_failure import (
    make_discord_on_run_failure_sensor,
    make_run_failure_retry_sensor,
)
from volaris_assets.monitoring.scan_summary import scan_summary_sensor
from volaris_assets.monitoring.schwab_token import make_schwab_token_sensor
from volaris_assets.options.assets import option_chains
from volaris_assets.options.definitions import option_chains_job
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.prices.definitions import daily_bars_job, intraday_bars_job
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.definitions import wheel_scan_job
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.volatility.definitions import iv_metrics_job

RETRY_TARGETS = [
    RetryTarget(daily_bars, daily_bars_job, "daily_data"),
    RetryTarget(intraday_bars, intraday_bars_job, "intraday_data"),
    RetryTarget(option_chains, option_chains_job, "chain_data"),
    RetryTarget(iv_metrics, iv_metrics_job, "chain_data"),
    RetryTarget(wheel_premiums, wheel_scan_job, "chain_data"),
]

defs = dg.Definitions(
    jobs=[daily_digest_job, gap_fill_job],
    schedules=[daily_digest_schedule, make_gap_fill_schedule(settings.load())],
    sensors=[
        freshness_alert_sensor,
        make_check_failure_sensor(),
        make_discord_on_run_failure_sensor(),
        make_run_failure_retry_sensor(),
        memory_warning_sensor,
        make_retry_failed_symbols_sensor(RETRY_TARGETS),
        scan_summary_sensor,
        make_schwab_token_sensor(),
    ],
)
