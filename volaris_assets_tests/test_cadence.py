"""Cadences are configuration: each data schedule's cadence comes from one variable, shows in the
schedule's description, changes the cron when set, and a bad value stops the code location with a
line naming the variable. The README's table lists every schedule and sensor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from volaris_assets import settings
from volaris_assets.definitions import defs
from volaris_assets.options import definitions as options
from volaris_assets.prices import definitions as prices
from volaris_assets.scan import definitions as scan
from volaris_assets.universe import definitions as universe
from volaris_assets.volatility import definitions as volatility

ROOT = Path(__file__).resolve().parents[1]
NY = ZoneInfo("America/New_York")
DOMAINS = {"prices": prices, "options": options, "volatility": volatility, "scan": scan}

# schedule: (domain, cron by default, the variable its description names)
DEFAULTS = {
    "intraday_bars_schedule": (
        "prices",
        "*/5 9-16 * * 1-5",
        "FIVE_MINUTE_JOB_INTERVAL_SECONDS=300",
    ),
    "daily_bars_schedule": ("prices", "15 17 * * 1-5", "EOD_SYNC_CRON_HOUR"),
    "option_chains_schedule": (
        "options",
        "*/15 9-15 * * 1-5",
        "OPTION_CHAIN_JOB_INTERVAL_MINUTES=15",
    ),
    "iv_metrics_intraday_schedule": (
        "volatility",
        "10-59/30 9-16 * * 1-5",
        "IV_METRICS_JOB_INTERVAL_MINUTES=30",
    ),
    "iv_metrics_schedule": ("volatility", "30 16 * * 1-5", "VOLARIS_IV_EOD_TIME"),
    "wheel_scan_schedule": ("scan", "45 16 * * 1-5", "VOLARIS_WHEEL_SCAN_TIME"),
}

# (variable, value, schedule, expected cron, words the description must show)
SET = [
    ("FIVE_MINUTE_JOB_INTERVAL_SECONDS", "60", "intraday_bars_schedule", "* 9-16 * * 1-5",
     "Every 1 min (FIVE_MINUTE_JOB_INTERVAL_SECONDS=60)"),
    ("FIVE_MINUTE_JOB_INTERVAL_SECONDS", "3600", "intraday_bars_schedule", "0 9-16 * * 1-5",
     "Every 1 h (FIVE_MINUTE_JOB_INTERVAL_SECONDS=3600)"),
    ("OPTION_CHAIN_JOB_INTERVAL_MINUTES", "30", "option_chains_schedule", "*/30 9-15 * * 1-5",
     "Every 30 min (OPTION_CHAIN_JOB_INTERVAL_MINUTES=30)"),
    ("IV_METRICS_JOB_INTERVAL_MINUTES", "15", "iv_metrics_intraday_schedule",
     "10-59/15 9-16 * * 1-5", "Every 15 min (IV_METRICS_JOB_INTERVAL_MINUTES=15)"),
    ("IV_METRICS_JOB_INTERVAL_MINUTES", "60", "iv_metrics_intraday_schedule", "10 9-16 * * 1-5",
     "Every 1 h (IV_METRICS_JOB_INTERVAL_MINUTES=60)"),
    ("EOD_SYNC_CRON_HOUR", "18", "daily_bars_schedule", "15 18 * * 1-5", "18:15 ET"),
    ("EOD_SYNC_CRON_MINUTE", "5", "daily_bars_schedule", "5 17 * * 1-5", "17:05 ET"),
    ("VOLARIS_IV_EOD_TIME", "16:20", "iv_metrics_schedule", "20 16 * * 1-5", "16:20 ET"),
    ("VOLARIS_WHEEL_SCAN_TIME", "19:00", "wheel_scan_schedule", "0 19 * * 1-5", "19:00 ET"),
]  # fmt: skip


def _schedules(domain, env: dict[str, str]) -> dict[str, dg.ScheduleDefinition]:
    return {s.name: s for s in domain.schedules(settings.load(env))}


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_the_code_location_runs_the_documented_defaults(name):
    _, cron, variable = DEFAULTS[name]
    schedule = defs.resolve_schedule_def(name)
    assert schedule.cron_schedule == cron
    assert variable in schedule.description


@pytest.mark.parametrize(("variable", "value", "name", "cron", "shown"), SET)
def test_setting_a_variable_changes_its_schedule(variable, value, name, cron, shown):
    schedule = _schedules(DOMAINS[DEFAULTS[name][0]], {variable: value})[name]
    assert schedule.cron_schedule == cron
    assert shown in schedule.description


def test_the_universe_refresh_follows_its_cron():
    schedule = _schedules(universe, {"VOLARIS_UNIVERSE_CRON": "30 5 * * 0"})[
        "universe_weekly_schedule"
    ]
    assert schedule.cron_schedule == "30 5 * * 0"
    assert "VOLARIS_UNIVERSE_CRON" in schedule.description


def _tick(schedule: dg.ScheduleDefinition, at: str, instance: dg.DagsterInstance):
    """Evaluate `schedule` at `at` (ET) in the code location (which holds the same job)."""
    with dg.build_schedule_context(
        instance=instance,
        repository_def=defs.get_repository_def(),
        scheduled_execution_time=datetime.fromisoformat(at).replace(tzinfo=NY),
    ) as context:
        return schedule.evaluate_tick(context)


def _snapshot_stored(instance: dg.DagsterInstance, partition: str) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(asset_key="option_chains", partition=partition)
    )


def test_a_configured_intraday_iv_cadence_ticks_only_in_sessions(instance):
    schedule = _schedules(volatility, {"IV_METRICS_JOB_INTERVAL_MINUTES": "15"})[
        "iv_metrics_intraday_schedule"
    ]
    _snapshot_stored(instance, "2026-11-24-10:00")
    ran = _tick(schedule, "2026-11-24T10:25", instance)
    assert [r.partition_key for r in ran.run_requests] == ["2026-11-24"]
    for closed in ("2026-11-24T09:10", "2026-11-26T10:25", "2026-11-27T13:25"):
        skipped = _tick(schedule, closed, instance)  # before the open, Thanksgiving, early close
        assert not skipped.run_requests and "market closed" in skipped.skip_message


def test_intraday_iv_waits_for_the_sessions_first_chain_snapshot(instance):
    """A deployment started mid-session: until a snapshot of the session is stored, a run
    could only fail on every symbol, so the tick is skipped and says why."""
    schedule = defs.resolve_schedule_def("iv_metrics_intraday_schedule")
    _snapshot_stored(instance, "2026-11-23-15:45")  # the session before
    _snapshot_stored(instance, "2026-11-24-11:00")  # after the tick: not yet taken then
    waiting = _tick(schedule, "2026-11-24T10:40", instance)
    assert not waiting.run_requests
    assert "no option-chain snapshot of 2026-11-24 is stored yet" in waiting.skip_message
    _snapshot_stored(instance, "2026-11-24-10:30")
    ran = _tick(schedule, "2026-11-24T10:40", instance)
    assert [r.partition_key for r in ran.run_requests] == ["2026-11-24"]


BAD = [
    ("OPTION_CHAIN_JOB_INTERVAL_MINUTES", "7", "is not a multiple of 15 minutes"),
    ("OPTION_CHAIN_JOB_INTERVAL_MINUTES", "45", "does not divide the hour"),
    ("IV_METRICS_JOB_INTERVAL_MINUTES", "0", "is not a multiple of 15 minutes"),
    ("FIVE_MINUTE_JOB_INTERVAL_SECONDS", "90", "whole number of minutes that divides the hour"),
    ("FIVE_MINUTE_JOB_INTERVAL_SECONDS", "5m", "not a whole number"),
    ("REALTIME_JOB_INTERVAL_SECONDS", "15", "below the 60 s minimum"),
    ("EOD_SYNC_CRON_HOUR", "9", "greater than or equal to 16"),
    ("VOLARIS_IV_EOD_TIME", "25:00", "not a time of day"),
    ("VOLARIS_WHEEL_SCAN_TIME", "16:45:30", "has seconds"),
    ("VOLARIS_UNIVERSE_CRON", "0 6 * *", "not a five-field cron expression"),
]


@pytest.mark.parametrize(("variable", "value", "reason"), BAD)
def test_a_bad_cadence_is_a_clear_error(variable, value, reason):
    with pytest.raises(settings.SettingsError) as raised:
        settings.load({variable: value})
    [problem] = raised.value.problems
    assert problem.variable == variable and reason in problem.reason
    assert f"e.g. {variable}=" in problem.line()


def test_the_code_location_shows_a_set_cadence():
    """The code location as Dagster imports it, in a fresh process with the variable set (a bad
    value stops that import with the same `SettingsError` as `settings.load`)."""
    clean = {k: v for k, v in os.environ.items() if k not in settings.fields()}
    script = (
        "from volaris_assets.definitions import defs\n"
        "s = defs.resolve_schedule_def('option_chains_schedule')\n"
        "print(s.cron_schedule + '|' + s.description)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script],
        env={**clean, "OPTION_CHAIN_JOB_INTERVAL_MINUTES": "30"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    cron, description = loaded.stdout.strip().splitlines()[-1].split("|")
    assert cron == "*/30 9-15 * * 1-5"
    assert "OPTION_CHAIN_JOB_INTERVAL_MINUTES=30" in description


def _readme_rows() -> dict[str, str]:
    """The README's schedule-and-sensor table: name -> its variable column."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Schedules and sensors", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = re.fullmatch(r"`(\w+)`", cells[0]) if line.startswith("|") else None
        if name:
            rows[name.group(1)] = cells[2]
    return rows


def test_the_readme_tables_every_schedule_and_sensor_with_its_variable():
    rows = _readme_rows()
    names = {s.name for s in defs.schedules} | {s.name for s in defs.sensors}
    assert set(rows) == names, "keep README's 'Schedules and sensors' table in step"
    for schedule in defs.schedules:
        variables = re.findall(r"`([A-Z_]+)`", rows[schedule.name])
        assert all(v in schedule.description for v in variables), schedule.name
