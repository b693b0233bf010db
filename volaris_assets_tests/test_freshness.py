"""Calendar-aware freshness: evaluated on a real instance with Dagster's clock frozen.

Materializations are reported to the instance at frozen instants, so "the last update was 31
minutes ago during a session" is a fact of the event log, not an argument to a function.
"""

from datetime import datetime

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from volaris_assets import calendar
from volaris_assets.monitoring.freshness import (
    FRESH_UNTIL,
    evaluate_intraday_freshness,
    evaluate_session_freshness,
    freshness_checks,
    freshness_checks_sensor,
    session_key,
    snapshot_keys,
)
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets_tests.pipeline_support import resources

ASSETS = [daily_bars, intraday_bars, option_chains, iv_metrics, wheel_premiums]


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=calendar.NY)


def report(instance: dg.DagsterInstance, asset: str, partition: str, at: datetime) -> None:
    with freeze_time(at):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, partition=partition)
        )


def fresh_until(result: dg.AssetCheckResult) -> datetime:
    return datetime.fromtimestamp(result.metadata[FRESH_UNTIL].value, calendar.NY)


@pytest.mark.parametrize(
    "now",
    [
        et(2026, 11, 28, 12, 0),  # Saturday
        et(2026, 11, 26, 11, 0),  # Thanksgiving, a weekday holiday
        et(2025, 12, 24, 13, 30),  # after the 13:00 early close
        et(2026, 11, 24, 9, 29),  # a session, before the open
        et(2026, 11, 24, 16, 0),  # the close itself
    ],
)
def test_intraday_assets_are_never_stale_while_the_market_is_closed(instance, now):
    # Nothing was ever materialized: only a closed market can make this pass.
    for asset, keys_for in ((intraday_bars, session_key), (option_chains, snapshot_keys)):
        result = evaluate_intraday_freshness(instance, asset.key, now, keys_for)
        assert result.passed, (asset.key, now, result.description)
        reopen = fresh_until(result)
        assert calendar.session_at(reopen.astimezone(calendar.UTC)) is not None
        assert reopen > now and reopen.minute == 0 and reopen.hour == 10  # open + 30 min


def test_intraday_bars_go_stale_30_minutes_after_the_last_update(instance):
    report(instance, "intraday_bars", "2025-12-23", et(2025, 12, 23, 15, 55))
    report(instance, "intraday_bars", "2025-12-24", et(2025, 12, 24, 10, 0))
    check = lambda now: evaluate_intraday_freshness(  # noqa: E731
        instance, intraday_bars.key, now, session_key
    )
    assert check(et(2025, 12, 24, 9, 50)).passed  # the open counts as the last update
    assert check(et(2025, 12, 24, 10, 20)).passed
    assert fresh_until(check(et(2025, 12, 24, 10, 20))) == et(2025, 12, 24, 10, 30)
    stale = check(et(2025, 12, 24, 10, 31))
    assert not stale.passed and "31 min" in stale.description
    # Yesterday's partition updated later does not make today's session fresh.
    report(instance, "intraday_bars", "2025-12-23", et(2025, 12, 24, 10, 25))
    assert not check(et(2025, 12, 24, 10, 31)).passed
    # Near the 13:00 early close, the next moment it could be stale is the next session.
    report(instance, "intraday_bars", "2025-12-24", et(2025, 12, 24, 12, 40))
    late = check(et(2025, 12, 24, 12, 50))
    assert late.passed and fresh_until(late) == et(2025, 12, 26, 10, 0)


def test_option_chains_count_only_this_sessions_snapshots(instance):
    report(instance, "option_chains", "2025-12-23-15:45", et(2025, 12, 23, 15, 46))
    check = lambda now: evaluate_intraday_freshness(  # noqa: E731
        instance, option_chains.key, now, snapshot_keys
    )
    assert not check(et(2025, 12, 24, 10, 5)).passed
    report(instance, "option_chains", "2025-12-24-09:45", et(2025, 12, 24, 9, 46))
    assert check(et(2025, 12, 24, 10, 5)).passed


def test_daily_freshness_expects_the_last_session_past_its_deadline(instance):
    check = lambda now: evaluate_session_freshness(instance, daily_bars.key, now)  # noqa: E731
    report(instance, "daily_bars", "2026-11-25", et(2026, 11, 25, 17, 20))
    # Thanksgiving evening: Wednesday's session is the one due (Dagster's time-partition check
    # expects Friday's key here).
    holiday = check(et(2026, 11, 26, 19, 0))
    assert holiday.passed and holiday.metadata["expected_partition"].value == "2026-11-25"
    assert fresh_until(holiday) == et(2026, 11, 27, 18, 0)
    # Friday (an early close) before its deadline: still Wednesday's; after it, Friday's.
    assert check(et(2026, 11, 27, 17, 59)).passed
    overdue = check(et(2026, 11, 28, 10, 0))
    assert not overdue.passed
    assert overdue.metadata["expected_partition"].value == "2026-11-27"
    assert overdue.metadata["overdue_seconds"].value == 16 * 3600


def test_the_freshness_sensor_runs_checks_only_when_they_can_be_stale(sqlite_warehouse_url):
    defs = dg.Definitions(
        assets=[*ASSETS, sp500_constituents, scan_universe],
        asset_checks=freshness_checks,
        sensors=[freshness_checks_sensor],
        resources=resources(sqlite_warehouse_url),
    )
    job = defs.resolve_implicit_global_asset_job_def()
    intraday = {intraday_bars.key, option_chains.key}

    def tick(instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
        context = dg.build_sensor_context(instance=instance, definitions=defs, cursor=cursor)
        return freshness_checks_sensor.evaluate_tick(context)

    with dg.instance_for_test() as instance:
        with freeze_time(et(2026, 11, 28, 12, 0)):  # Saturday
            first = tick(instance, None)
            keys = first.run_requests[0].asset_check_keys
            assert {k.asset_key for k in keys} >= intraday
            run = job.get_subset(asset_selection=set(), asset_check_selection=set(keys))
            result = run.execute_in_process(instance=instance, raise_on_error=False)
            passed = {e.asset_key for e in result.get_asset_check_evaluations() if e.passed}
            assert passed == intraday  # nothing else was ever materialized
            again = tick(instance, first.cursor)
            assert not again.run_requests  # the weekend cannot make them stale
        with freeze_time(et(2026, 11, 30, 10, 1)):  # Monday, 31 minutes into the session
            monday = tick(instance, first.cursor)
            assert {k.asset_key for k in monday.run_requests[0].asset_check_keys} == intraday
