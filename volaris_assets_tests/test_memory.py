"""Memory tooling: a run past VOLARIS_MEMORY_WARN_MB warns once in its log, is tagged and is
posted to Discord once; VOLARIS_TRACEMALLOC_TOP records the top allocations; the doctor reports
the daemon's memory and the recent runs' peaks. Real runs on a real instance, a loopback
webhook, a real process standing in for the daemon."""

import os
import subprocess
import sys
from datetime import UTC, datetime

import dagster as dg
import pytest

from volaris_assets import doctor
from volaris_assets.ingest.memory import MEMORY_TAG, process_memory
from volaris_assets.monitoring.memory_alerts import memory_warning_sensor
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets_tests.monitoring_support import embeds, notifier_for
from volaris_assets_tests.pipeline_support import SESSION, resources
from volaris_assets_tests.webhook_receiver import WebhookReceiver


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def home(tmp_path):
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def daemons(home, tmp_path):
    """Processes whose command lines are the small-box daemon's: one serving `home`, one
    another instance, as the doctor finds them."""
    command = [sys.executable, "-c", "import time; time.sleep(120)", "volaris-daemon"]
    started = [
        subprocess.Popen(command, env={**os.environ, "DAGSTER_HOME": str(where)})
        for where in (home, tmp_path / "another-instance")
    ]
    yield started
    for process in started:
        process.kill()
        process.wait()


def test_a_run_past_the_threshold_warns_once_and_records_where_memory_goes(
    sqlite_warehouse_url, small_universe, receiver, tmp_path, monkeypatch, home, daemons
):
    # Any Python process running Dagster is past 50 MB: the warning must fire, once per run
    # although two assets fan out in it.
    monkeypatch.setenv("VOLARIS_MEMORY_WARN_MB", "50")
    monkeypatch.setenv("VOLARIS_TRACEMALLOC_TOP", "3")
    res = {**resources(sqlite_warehouse_url), "notifier": notifier_for(receiver, tmp_path)}
    # Late in a full suite this process's high-water mark is already above anything the run
    # reaches: the warning must come from the run's own readings, not from a new peak.
    spike = bytearray(300 * 1024 * 1024)
    spike[::4096] = b"x" * len(spike[::4096])
    del spike
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        dg.materialize([sp500_constituents], resources=res, instance=instance)
        result = dg.materialize(
            [daily_bars, intraday_bars], partition_key=SESSION, resources=res, instance=instance
        )
        run = instance.get_run_by_id(result.run_id)
        warnings = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == 30 and entry.user_message.startswith("memory:")
        ]
        observations = [
            e.asset_observation_data.asset_observation
            for e in result.all_events
            if e.event_type == dg.DagsterEventType.ASSET_OBSERVATION
        ]
        cursor = None
        for _ in range(2):  # the second tick has nothing new to say
            with dg.build_sensor_context(
                instance=instance, cursor=cursor, resources={"notifier": res["notifier"]}
            ) as context:
                cursor = memory_warning_sensor.evaluate_tick(context).cursor

    assert MEMORY_TAG in run.tags and float(run.tags[MEMORY_TAG]) > 50
    assert len(warnings) == 1 and "past VOLARIS_MEMORY_WARN_MB=50" in warnings[0]
    assert {str(o.asset_key.to_user_string()) for o in observations} == {
        "daily_bars",
        "intraday_bars",
    }
    table = observations[0].metadata["top_allocations"].value.splitlines()
    assert table[0] == "| MB | blocks | where |" and len(table) == 2 + 3
    assert observations[0].metadata["traced_peak_mb"].value > 0

    [embed] = embeds(receiver)  # the sensor's second tick posted nothing more
    assert embed["title"] == f"Memory warning: {run.job_name} at {run.tags[MEMORY_TAG]} MB"
    assert {f["name"]: f["value"] for f in embed["fields"]}["Run"] == run.run_id[:8]

    areas = {
        check.area: check
        for check in doctor.check_dagster(
            {"DAGSTER_HOME": str(home), "VOLARIS_MEMORY_WARN_MB": "50"}, datetime.now(UTC)
        )
    }
    runs = areas["memory runs"]
    assert runs.status is doctor.Status.WARN
    assert (
        f"in run {run.run_id[:8]}" in runs.detail and "(VOLARIS_MEMORY_WARN_MB=50)" in runs.detail
    )
    assert "1 run(s) passed the threshold" in runs.detail
    ours, theirs = daemons
    assert f"pid {ours.pid} " in areas["memory daemon"].detail
    assert f"pid {theirs.pid} " not in areas["memory daemon"].detail


def test_a_run_under_the_threshold_says_nothing(
    sqlite_warehouse_url, small_universe, instance, monkeypatch
):
    # The run is this test process, whose size depends on the tests before it (456 MB late in a
    # full suite): the threshold sits well above where it stands now.
    monkeypatch.setenv("VOLARIS_MEMORY_WARN_MB", str(int(process_memory().rss_mb) + 300))
    res = resources(sqlite_warehouse_url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    result = dg.materialize([daily_bars], partition_key=SESSION, resources=res, instance=instance)
    assert MEMORY_TAG not in instance.get_run_by_id(result.run_id).tags
    assert not [e for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
