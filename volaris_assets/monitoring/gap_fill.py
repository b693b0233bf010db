"""The nightly gap-fill: re-run exactly the session partitions of the last N sessions that are
missing or failed, and say on Discord what was launched.

A partition is a gap when Dagster has no materialization of it, when its latest run failed, or
when the warehouse holds no rows for it (rows deleted or lost after a successful run: open-source
Dagster cannot wipe one partition's materializations, so the warehouse is the other witness).
IV history is judged by its rows alone (and a failed bootstrap run): `iv_metrics` writes each
evening's row too, so a session it measured is whole though the bootstrap never ran for it.
A schedule returning one `RunRequest` per (asset, partition) rather than a backfill of the whole
window: a partition already whole is never fetched again (the provider budget is spent on the
gaps only), each gap is a run of its own whose failure the run-failure sensor reports, and a
`run_key` per night and partition keeps a re-evaluated tick from launching a gap twice. The
replaced system did the same at 03:00 UTC over 30 days (HISTORICAL_BACKFILL_CRON_HOUR,
HISTORICAL_BACKFILL_LOOKBACK_DAYS).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import dagster as dg
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.prices.assets import daily_bars
from volaris_assets.resources.notifier import DiscordNotifier, Severity
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.settings import Settings
from volaris_assets.volatility.bootstrap import iv_history_bootstrap
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

GAP_FILL_TAG = "volaris/gap_fill"


@dataclass(frozen=True)
class GapTarget:
    """A session-partitioned asset the gap-fill keeps whole, how to tell from the warehouse
    which of some sessions it holds rows for, and the provider capability its runs queue behind
    (the run coordinator's `volaris/capability` limit)."""

    asset: dg.AssetsDefinition
    stored: Callable[[Warehouse, list[date]], set[date]]
    capability: str
    # Rows another asset also writes: a session with rows is whole whatever Dagster recorded.
    rows_alone: bool = False

    def is_gap(self, status: dg.AssetPartitionStatus | None, has_rows: bool) -> bool:
        """Partitions of a run still in progress are left to it."""
        if status is dg.AssetPartitionStatus.IN_PROGRESS:
            return False
        if self.rows_alone:
            return status is dg.AssetPartitionStatus.FAILED or not has_rows
        return status is not dg.AssetPartitionStatus.MATERIALIZED or not has_rows


def _daily_bar_sessions(warehouse: Warehouse, days: list[date]) -> set[date]:
    """Sessions among `days` with at least one daily bar (stamped at the date, 00:00 UTC)."""
    bars = tables.price_bars
    stamps = [warehouse.instant(datetime.combine(day, time(0), calendar.UTC)) for day in days]
    query = sa.select(bars.c.ts).where(bars.c.timeframe == "1d", bars.c.ts.in_(stamps)).distinct()
    with warehouse.engine.connect() as conn:
        return {stamp.date() for stamp in conn.execute(query).scalars()}


def _iv_history_sessions(warehouse: Warehouse, days: list[date]) -> set[date]:
    """Sessions among `days` with a 30-day ATM IV for at least one symbol."""
    metrics = tables.iv_metrics
    query = (
        sa.select(metrics.c.date)
        .where(metrics.c.date.in_(days), metrics.c.atm_iv_30d.is_not(None))
        .distinct()
    )
    with warehouse.engine.connect() as conn:
        return set(conn.execute(query).scalars())


# The one place to add a session-partitioned asset, with its own `stored` query: the job, the
# schedule and its Discord summary follow.
GAP_FILL_TARGETS: tuple[GapTarget, ...] = (
    GapTarget(daily_bars, _daily_bar_sessions, capability="daily"),
    GapTarget(iv_history_bootstrap, _iv_history_sessions, capability="history", rows_alone=True),
)

gap_fill_job = dg.define_asset_job(
    "gap_fill_job",
    selection=[target.asset for target in GAP_FILL_TARGETS],
    description="Session partitions re-run by the nightly gap-fill (one asset and partition per "
    "run).",
)


def recent_sessions(now: datetime, count: int) -> list[str]:
    """The partition keys of the `count` latest sessions closed at `now`, oldest first, never
    before the first session partition."""
    last = calendar.last_completed_session(now).day
    # Any 7 calendar days hold at least 3 sessions, even around Christmas and New Year.
    earliest = max(last - timedelta(days=3 * count + 7), calendar.first_session())
    days = calendar.sessions_between(earliest, last)[-count:]
    return [current.day.strftime(calendar.SESSION_KEY_FORMAT) for current in days]


def gaps(
    instance: dg.DagsterInstance, warehouse: Warehouse, keys: list[str]
) -> dict[dg.AssetKey, list[str]]:
    """Per target asset, the keys among `keys` never materialized, whose latest run failed, or
    without rows in the warehouse; partitions of a run still in progress are left to it."""
    found = {}
    partitions_def = calendar.session_partitions()
    days = [calendar.session_day(key) for key in keys]
    for target in GAP_FILL_TARGETS:
        status = instance.get_status_by_partition(target.asset.key, keys, partitions_def) or {}
        stored = target.stored(warehouse, days)
        missing = [
            key
            for key, day in zip(keys, days, strict=True)
            if target.is_gap(status.get(key), day in stored)
        ]
        if missing:
            found[target.asset.key] = missing
    return found


def summary(found: dict[dg.AssetKey, list[str]], window: list[str]) -> str:
    lines = [
        f"{key.to_user_string()}: {len(keys)} partition(s): {', '.join(keys)}"
        for key, keys in found.items()
    ]
    return f"Sessions {window[0]}..{window[-1]} checked ({len(window)}).\n" + "\n".join(lines)


def make_gap_fill_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The gap-fill at HISTORICAL_BACKFILL_CRON_HOUR:00 UTC every day over the latest
    HISTORICAL_BACKFILL_LOOKBACK_DAYS sessions."""
    lookback = settings.backfill_lookback_sessions

    @dg.schedule(
        name="nightly_gap_fill",
        job=gap_fill_job,
        cron_schedule=f"0 {settings.backfill_hour} * * *",
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{settings.backfill_hour:02d}:00 UTC (HISTORICAL_BACKFILL_CRON_HOUR): re-runs "
        f"the missing or failed daily_bars and IV-history (iv_history_bootstrap) partitions of "
        f"the latest {lookback} sessions "
        "(HISTORICAL_BACKFILL_LOOKBACK_DAYS), one run per asset and partition, and posts what it "
        "launched to Discord.",
    )
    def nightly_gap_fill(
        context: dg.ScheduleEvaluationContext,
        warehouse: WarehouseResource,
        notifier: DiscordNotifier,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        tick = context.scheduled_execution_time or datetime.now(calendar.UTC)
        window = recent_sessions(tick, lookback)
        with warehouse.open() as wh:
            found = gaps(context.instance, wh, window)
        if not found:
            return dg.SkipReason(f"no gaps in sessions {window[0]}..{window[-1]}")
        night = tick.astimezone(calendar.UTC).date().isoformat()
        count = sum(len(keys) for keys in found.values())
        text = summary(found, window)
        notifier.notify(
            f"Nightly gap-fill: {count} partition(s) re-run",
            text,
            severity=Severity.INFO,
            # A re-evaluated tick posts nothing new; other gaps found the same night are news.
            dedup_key=f"gap-fill:{night}:{hashlib.sha256(text.encode()).hexdigest()[:16]}",
        )
        capability = {target.asset.key: target.capability for target in GAP_FILL_TARGETS}
        return [
            dg.RunRequest(
                run_key=f"gap-fill:{night}:{asset_key.to_user_string()}:{key}",
                partition_key=key,
                asset_selection=[asset_key],
                tags={GAP_FILL_TAG: night, "volaris/capability": capability[asset_key]},
            )
            for asset_key, keys in found.items()
            for key in keys
        ]

    return nightly_gap_fill
