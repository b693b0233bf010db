"""Freshness that knows the market calendar, evaluated by Dagster's freshness-check sensor.

- Daily assets (`daily_bars`, `iv_metrics`, `wheel_premiums`): by 18:00 ET on each session the
  session's partition must exist. Dagster's `build_time_partition_freshness_checks` is not used:
  on these session partitions (`end_offset=1` plus holiday exclusions) it expects the *next*
  session's partition on the evening of a holiday (Thanksgiving 18:00 wants Friday's key, a
  Dagster bug, #33551), so it would alert on every exchange holiday. The check here asks the
  calendar for the latest session whose deadline has passed.
- Intraday assets (`intraday_bars`, `option_chains`): during a session the latest materialization
  of one of the session's partitions must be under 30 minutes old (counting from the open, so the
  first half hour is not stale); while the market is closed they are never stale.
- Universe assets: weekly, not calendar-bound, so Dagster's own
  `build_last_update_freshness_checks` (refreshed within the week before Monday 07:00 ET).

Every check reports `dagster/fresh_until_timestamp`, which is what
`build_sensor_for_freshness_checks` reads to decide when a passing check could turn stale, so one
sensor runs them all exactly when needed (an intraday check again 30 minutes after the last
update, never overnight). A failing check is re-run with the asset's next materialization (checks
run with their asset), and its failure reaches Discord through the check-failure sensor.

"Now" is Dagster's own clock (`dagster._time`), the one behind event timestamps and the freshness
sensor, so the three always agree (and a test can freeze them together).
"""

from collections.abc import Callable
from datetime import date, datetime, time, timedelta

import dagster as dg
from dagster._time import get_current_datetime

from volaris_assets import calendar
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.volatility.assets import iv_metrics

FRESH_UNTIL = "dagster/fresh_until_timestamp"
LAST_UPDATED = "dagster/last_updated_timestamp"
DAILY_DEADLINE = time(18, 0)  # ET: after the 16:30-17:15 after-close jobs, with slack
INTRADAY_MAX_LAG = timedelta(minutes=30)
CHECK_INTERVAL_S = 300

KeysFor = Callable[[calendar.Session, datetime], list[str]]


def deadline(day: date) -> datetime:
    return datetime.combine(day, DAILY_DEADLINE, tzinfo=calendar.NY).astimezone(calendar.UTC)


def next_session(after: date) -> calendar.Session:
    """The first session strictly after `after` (holidays and weekends skipped)."""
    return calendar.sessions_between(after + timedelta(days=1), after + timedelta(days=10))[0]


def due_session(now: datetime) -> calendar.Session:
    """The latest session whose partition is due: today's once its deadline has passed."""
    today = now.astimezone(calendar.NY).date()
    if calendar.is_session(today) and deadline(today) <= now:
        return calendar.session(today)
    return calendar.previous_session(today)


def _latest_update(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str] | None
) -> float | None:
    """Timestamp of the newest materialization (of one of `partitions`, if given)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions), limit=1
    ).records
    return records[0].timestamp if records else None


def evaluate_session_freshness(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, now: datetime
) -> dg.AssetCheckResult:
    """Fresh when the partition of the latest session past its deadline exists."""
    due = due_session(now)
    key = due.day.isoformat()
    found = _latest_update(instance, asset_key, [key])
    metadata: dict[str, object] = {
        "expected_partition": key,
        "deadline": dg.MetadataValue.timestamp(deadline(due.day)),
    }
    last = _latest_update(instance, asset_key, None)
    if last is not None:
        metadata[LAST_UPDATED] = dg.MetadataValue.timestamp(last)
    if found is None:
        overdue = (now - deadline(due.day)).total_seconds()
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"partition {key} is missing {overdue / 3600:.1f} h after its deadline",
            metadata={**metadata, "overdue_seconds": round(overdue)},
        )
    following = deadline(next_session(due.day).day)
    return dg.AssetCheckResult(
        passed=True,
        description=f"partition {key} present",
        metadata={**metadata, FRESH_UNTIL: dg.MetadataValue.timestamp(following)},
    )


def evaluate_intraday_freshness(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    now: datetime,
    keys_for: KeysFor,
    max_lag: timedelta = INTRADAY_MAX_LAG,
) -> dg.AssetCheckResult:
    """Fresh while closed; in a session, fresh when updated within `max_lag` (or the session
    opened less than `max_lag` ago)."""
    current = calendar.session_at(now)
    if current is None:
        reopen = _next_open(now)
        return dg.AssetCheckResult(
            passed=True,
            description="market closed: not expected to update",
            metadata={FRESH_UNTIL: dg.MetadataValue.timestamp(reopen + max_lag)},
        )
    last = _latest_update(instance, asset_key, keys_for(current, now))
    reference = max(last or 0.0, current.open.timestamp())
    lag = now.timestamp() - reference
    metadata: dict[str, object] = {
        "session": current.day.isoformat(),
        "lag_minutes": round(lag / 60, 1),
        "max_lag_minutes": max_lag.total_seconds() / 60,
    }
    if last is not None:
        metadata[LAST_UPDATED] = dg.MetadataValue.timestamp(last)
    if lag > max_lag.total_seconds():
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"no update for {lag / 60:.0f} min during the session "
            f"(limit {max_lag.total_seconds() / 60:.0f})",
            metadata=metadata,
        )
    stale_at = reference + max_lag.total_seconds()
    if stale_at >= current.close.timestamp():
        stale_at = (_next_open(current.close) + max_lag).timestamp()
    return dg.AssetCheckResult(
        passed=True,
        description=f"updated {lag / 60:.0f} min ago",
        metadata={**metadata, FRESH_UNTIL: dg.MetadataValue.timestamp(stale_at)},
    )


def _next_open(now: datetime) -> datetime:
    """The next session open at or after `now`."""
    today = now.astimezone(calendar.NY).date()
    if calendar.is_session(today) and calendar.session(today).open >= now:
        return calendar.session(today).open
    return next_session(today).open


def session_key(current: calendar.Session, now: datetime) -> list[str]:
    return [current.day.isoformat()]


def snapshot_keys(current: calendar.Session, now: datetime) -> list[str]:
    return [calendar.snapshot_key(t) for t in calendar.snapshot_times(current.day) if t <= now]


def session_freshness_check(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="freshness_check",
        description=f"The latest session's partition exists by {DAILY_DEADLINE:%H:%M} ET "
        "(sessions only: weekends and exchange holidays expect nothing new).",
    )
    def _fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return evaluate_session_freshness(context.instance, asset.key, get_current_datetime())

    return _fresh


def intraday_freshness_check(
    asset: dg.AssetsDefinition,
    keys_for: KeysFor,
    max_lag: timedelta = INTRADAY_MAX_LAG,
) -> dg.AssetChecksDefinition:
    minutes = max_lag.total_seconds() / 60

    @dg.asset_check(
        asset=asset,
        name="freshness_check",
        description=f"Updated within {minutes:.0f} minutes while the market is open; never "
        "stale while it is closed (NYSE calendar, early closes included).",
    )
    def _fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        now = get_current_datetime()
        return evaluate_intraday_freshness(context.instance, asset.key, now, keys_for, max_lag)

    return _fresh


freshness_checks = [
    *(session_freshness_check(asset) for asset in (daily_bars, iv_metrics, wheel_premiums)),
    intraday_freshness_check(intraday_bars, session_key),
    intraday_freshness_check(option_chains, snapshot_keys),
    *dg.build_last_update_freshness_checks(
        assets=[sp500_constituents, scan_universe],
        lower_bound_delta=timedelta(days=7),
        deadline_cron="0 7 * * 1",
        timezone="America/New_York",
    ),
]

freshness_checks_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=freshness_checks,
    minimum_interval_seconds=CHECK_INTERVAL_S,
    name="freshness_checks_sensor",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
