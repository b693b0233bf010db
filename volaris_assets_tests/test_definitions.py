"""The code location as the UI and the daemon see it."""

from datetime import datetime

import dagster as dg
import pytest

from volaris_assets.definitions import defs
from volaris_assets.resources.definitions import resources

ASSETS = {
    "sp500_constituents": "universe",
    "scan_universe": "universe",
    "daily_bars": "prices",
    "intraday_bars": "prices",
    "option_chains": "options",
    "iv_metrics": "volatility",
    "wheel_premiums": "scan",
}


def test_assets_groups_and_metadata():
    graph = defs.resolve_asset_graph()
    specs = {node.key.to_user_string(): node for node in graph.asset_nodes}
    assert set(ASSETS) <= set(specs)
    for key, group in ASSETS.items():
        node = specs[key]
        assert node.group_name == group
        assert node.description and node.owners
        assert "dagster/column_schema" in node.metadata


def test_one_resource_set_serves_every_asset_and_check():
    """`materialize` and the cluster's workers bind `resources()` alone, not the location's
    merged set: a key a domain bound for itself failed them at the first asset needing it."""
    bound = set(resources()) | {"io_manager"}  # Dagster supplies its default
    graph = defs.resolve_asset_graph()
    for assets_def in graph.assets_defs:
        assert assets_def.required_resource_keys <= bound, assets_def.keys
    assert set(defs.resources or {}) == set(resources())


def test_jobs_run_in_process():
    assert defs.resolve_job_def("option_chains_job").executor_def.name == "in_process"


SCHEDULES = {
    # name: (tick in ET that should run, expected partition, tick that must skip)
    "option_chains_schedule": ("2026-11-27T12:45", "2026-11-27-12:45", "2026-11-27T13:00"),
    "intraday_bars_schedule": ("2026-11-24T10:05", "2026-11-24", "2026-11-26T10:05"),
    "daily_bars_schedule": ("2026-11-24T17:15", "2026-11-24", "2026-11-26T17:15"),
    "iv_metrics_schedule": ("2026-11-27T16:30", "2026-11-27", "2025-12-25T16:30"),
    "wheel_scan_schedule": ("2026-11-24T16:45", "2026-11-24", "2026-11-26T16:45"),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedules_follow_the_calendar(name, instance):
    schedule = defs.resolve_schedule_def(name)
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    run_at, key, skip_at = SCHEDULES[name]
    from zoneinfo import ZoneInfo

    ny = ZoneInfo("America/New_York")
    with dg.build_schedule_context(
        repository_def=defs.get_repository_def(),
        instance=instance,
        scheduled_execution_time=datetime.fromisoformat(run_at).replace(tzinfo=ny),
    ) as context:
        requests = schedule.evaluate_tick(context).run_requests
    assert [r.partition_key for r in requests] == [key]
    with dg.build_schedule_context(
        repository_def=defs.get_repository_def(),
        instance=instance,
        scheduled_execution_time=datetime.fromisoformat(skip_at).replace(tzinfo=ny),
    ) as context:
        result = schedule.evaluate_tick(context)
    assert not result.run_requests and "market closed" in (result.skip_message or "")


def test_universe_schedule_is_weekly_and_running():
    schedule = defs.resolve_schedule_def("universe_weekly_schedule")
    assert schedule.cron_schedule == "0 6 * * 1"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
