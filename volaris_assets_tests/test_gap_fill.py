"""The nightly gap-fill against real materializations: three session partitions deleted at random
from the warehouse are exactly what the next evaluation requests, and once those runs are made
nothing is left to fill. (Open-source Dagster cannot wipe one partition's materializations:
`wipe_asset_partitions` raises NotImplementedError on its SQL event logs, so a deletion is of the
rows. A partition Dagster never materialized, or whose latest run failed, is a gap by its status
alone: the second test.)"""

import random
from datetime import date, datetime, time

import dagster as dg
import pytest
import sqlalchemy as sa

from volaris_assets import calendar, settings
from volaris_assets.monitoring.gap_fill import (
    GAP_FILL_TAG,
    gaps,
    make_gap_fill_schedule,
    recent_sessions,
)
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars
from volaris_assets.resources.market_data import HistoryDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.volatility.bootstrap import iv_history_bootstrap
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import embeds, notifier_for
from volaris_assets_tests.pipeline_support import resources
from volaris_assets_tests.webhook_receiver import WebhookReceiver

# 03:00 UTC on the Wednesday after 2026-11-24: the window ends with that session.
TICK = datetime(2026, 11, 25, 3, 0, tzinfo=calendar.UTC)
RANGE_TAGS = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


def evaluate(schedule: dg.ScheduleDefinition, instance, notifier, database_url: str):
    with dg.build_schedule_context(
        instance=instance,
        scheduled_execution_time=TICK,
        resources={"notifier": notifier, "warehouse": WarehouseResource(database_url=database_url)},
    ) as context:
        result = schedule(context)
    return [] if isinstance(result, dg.SkipReason) else result


def bar_requests(requests: list[dg.RunRequest]) -> list[dg.RunRequest]:
    return [r for r in requests if r.asset_selection == [daily_bars.key]]


def bar_days(database_url: str) -> set[date]:
    bars = tables.price_bars
    warehouse = Warehouse(database_url)
    with warehouse.engine.connect() as conn:
        stamps = conn.execute(sa.select(bars.c.ts).where(bars.c.timeframe == "1d")).scalars()
        return {stamp.date() for stamp in stamps}


def test_the_next_gap_fill_requests_exactly_the_deleted_partitions(
    warehouse_url, small_universe, instance, receiver, tmp_path
):
    schedule = make_gap_fill_schedule(settings.load())
    window = recent_sessions(TICK, settings.load().backfill_lookback_sessions)
    assert len(window) == 30 and window[-1] == "2026-11-24" and "2026-11-26" not in window
    res = resources(warehouse_url)
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    whole = dg.materialize(
        [daily_bars],
        resources=res,
        instance=instance,
        tags=dict(zip(RANGE_TAGS, (window[0], window[-1]), strict=True)),
    )
    assert whole.success
    assert len(whole.get_asset_materialization_events()) == 30
    notifier = notifier_for(receiver, tmp_path)
    first = evaluate(schedule, instance, notifier, warehouse_url)
    assert bar_requests(first) == []
    # The window has no IV history yet: its 30 sessions go to the bootstrap, queued as history.
    assert sorted(r.partition_key for r in first) == window
    assert {r.tags["volaris/capability"] for r in first} == {"history"}

    deleted = sorted(random.sample(window, 3))
    warehouse = Warehouse(warehouse_url)
    stamps = [
        warehouse.instant(datetime.combine(date.fromisoformat(k), time(0), calendar.UTC))
        for k in deleted
    ]
    with warehouse.engine.begin() as conn:
        conn.execute(
            sa.delete(tables.price_bars).where(
                tables.price_bars.c.timeframe == "1d", tables.price_bars.c.ts.in_(stamps)
            )
        )
    assert not {date.fromisoformat(k) for k in deleted} & bar_days(warehouse_url)

    requests = bar_requests(evaluate(schedule, instance, notifier, warehouse_url))
    assert sorted(r.partition_key for r in requests) == deleted, f"deleted {deleted}"
    assert all(r.tags["volaris/capability"] == "daily" for r in requests)
    [_, embed] = embeds(receiver)
    assert "33 partition(s)" in embed["title"] and all(k in embed["description"] for k in deleted)

    for request in requests:
        run = dg.materialize(
            [daily_bars],
            partition_key=request.partition_key,
            resources=res,
            instance=instance,
            tags={**request.tags, GAP_FILL_TAG: "test"},
        )
        assert run.success
    assert {date.fromisoformat(k) for k in window} <= bar_days(warehouse_url)
    assert bar_requests(evaluate(schedule, instance, notifier, warehouse_url)) == []


def test_failed_and_never_run_partitions_are_gaps(sqlite_warehouse_url, small_universe, instance):
    res = resources(sqlite_warehouse_url)
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    ok, failed, never = "2026-11-20", "2026-11-23", "2026-11-24"
    for key in (ok, failed):
        assert dg.materialize(
            [daily_bars], partition_key=key, resources=res, instance=instance
        ).success
    # A later run of `failed` fails: its rows from the first run remain, its status is FAILED.
    refused = dg.materialize(
        [daily_bars],
        partition_key=failed,
        resources=res,
        instance=instance,
        run_config={"ops": {"daily_bars": {"config": {"symbols": ["ZZZZ"]}}}},
        raise_on_error=False,
    )
    assert not refused.success

    found = gaps(instance, Warehouse(sqlite_warehouse_url), [ok, failed, never])
    assert found[daily_bars.key] == [failed, never]


def test_iv_history_gaps_are_sessions_without_iv_rows_or_with_a_failed_bootstrap(
    sqlite_warehouse_url, small_universe, instance
):
    """IV history is whole where `iv_metrics` holds a 30-day ATM IV, whichever asset wrote it:
    the evening's iv_metrics run fills the newest session without the bootstrap ever running."""
    res = {**resources(sqlite_warehouse_url), "history_data": HistoryDataResource()}
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    measured, bootstrapped, deleted, failed, never = (
        "2026-11-24",
        "2026-11-18",
        "2026-11-19",
        "2026-11-20",
        "2026-11-23",
    )
    snapshot = dg.materialize(
        [option_chains], partition_key=f"{measured}-15:45", resources=res, instance=instance
    )
    assert snapshot.success
    assert dg.materialize(
        [iv_metrics], partition_key=measured, resources=res, instance=instance
    ).success
    assert dg.materialize(
        [iv_history_bootstrap],
        resources=res,
        instance=instance,
        tags=dict(zip(RANGE_TAGS, (bootstrapped, deleted), strict=True)),
    ).success
    with Warehouse(sqlite_warehouse_url).engine.begin() as conn:
        conn.execute(
            sa.delete(tables.iv_metrics).where(tables.iv_metrics.c.date == date(2026, 11, 19))
        )
    refused = dg.materialize(
        [iv_history_bootstrap],
        partition_key=failed,
        resources=res,
        instance=instance,
        run_config={"ops": {"iv_history_bootstrap": {"config": {"symbols": ["ZZZZ"]}}}},
        raise_on_error=False,
    )
    assert not refused.success

    keys = [bootstrapped, deleted, failed, never, measured]
    found = gaps(instance, Warehouse(sqlite_warehouse_url), keys)
    assert found[iv_history_bootstrap.key] == [deleted, failed, never]
