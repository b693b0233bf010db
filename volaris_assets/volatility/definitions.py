from datetime import datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets import settings as settings_module
from volaris_assets.monitoring.freshness import latest_update, snapshot_keys
from volaris_assets.options.assets import option_chains
from volaris_assets.scheduling import (
    daily_at,
    every,
    session_key_after_close,
    session_key_during_session,
)
from volaris_assets.settings import Settings
from volaris_assets.volatility.assets import iv_metrics, iv_metrics_intraday
from volaris_assets.volatility.bootstrap import iv_history_bootstrap
from volaris_assets.volatility.checks import volatility_checks

iv_metrics_job = dg.define_asset_job(
    "iv_metrics_job", selection=[iv_metrics], tags={"volaris/capability": "chain"}
)
# Reads stored snapshots only: no provider capability to queue behind.
iv_metrics_intraday_job = dg.define_asset_job(
    "iv_metrics_intraday_job", selection=[iv_metrics_intraday]
)
# Backfilled over the last 252 sessions once, at installation (no schedule).
iv_history_bootstrap_job = dg.define_asset_job(
    "iv_history_bootstrap_job",
    selection=[iv_history_bootstrap],
    tags={"volaris/capability": "history"},
)
# Intraday IV ticks this far into each interval: the snapshot taken at its start is stored by then
# (a full chain pass takes ~5 minutes at Schwab's 120 requests a minute).
INTRADAY_IV_OFFSET_MINUTES = 10


def chain_snapshot_stored(
    instance: dg.DagsterInstance, session_key: str, tick: datetime
) -> str | None:
    """Why an intraday IV tick waits: no option-chain snapshot of its session is materialized
    yet (None once one is). Until the session's first chain run finishes there is nothing to
    measure, and a run would fail on every symbol, with a failure alert: a deployment started
    in the middle of a session, or a first chain pass slower than the offset, hit this."""
    session = calendar.session(calendar.session_day(session_key))
    if latest_update(instance, option_chains.key, snapshot_keys(session, tick)) is not None:
        return None
    return (
        f"no option-chain snapshot of {session_key} is stored yet: the session's first "
        "option_chains run has not finished, so there is nothing to measure"
    )


def schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    """The IV metrics schedules at the configured cadences."""
    return [
        daily_at(
            "iv_metrics_schedule",
            iv_metrics_job,
            settings.iv_eod_time,
            "VOLARIS_IV_EOD_TIME",
            session_key_after_close,
            "end-of-day IV metrics from the session's last option-chain snapshot",
        ),
        every(
            "iv_metrics_intraday_schedule",
            iv_metrics_intraday_job,
            settings.iv_metrics_interval_min * 60,
            "IV_METRICS_JOB_INTERVAL_MINUTES",
            session_key_during_session,
            f"Intraday IV metrics from each symbol's latest chain snapshot, "
            f"{INTRADAY_IV_OFFSET_MINUTES} minutes into each interval, once the session has "
            "a stored snapshot.",
            offset_minutes=INTRADAY_IV_OFFSET_MINUTES,
            precondition=chain_snapshot_stored,
        ),
    ]


defs = dg.Definitions(
    assets=[iv_metrics, iv_metrics_intraday, iv_history_bootstrap],
    asset_checks=volatility_checks,
    jobs=[iv_metrics_job, iv_metrics_intraday_job, iv_history_bootstrap_job],
    schedules=schedules(settings_module.load()),
)
