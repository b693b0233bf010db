"""Discord down for a whole run: every webhook request answers 500, or hangs. The scan still
succeeds, the sensors that report on it (scan summary, run failure) finish their ticks in bounded
time, and each undelivered alert costs exactly one WARNING line, never a stack of them."""

from __future__ import annotations

import logging
import time

import dagster as dg
import pytest

from volaris_assets.monitoring.run_failure import make_discord_on_run_failure_sensor
from volaris_assets.monitoring.scan_summary import scan_summary_sensor
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets_tests.pipeline_support import resources
from volaris_assets_tests.reliability.market_setup import SESSION, materialize_universe
from volaris_assets_tests.webhook_receiver import WebhookReceiver

TIMEOUT_S = 0.3
MAX_RETRIES = 2
ALERTS = 2  # the scan summary and the failed run
INVERTED_BAND = {"ops": {"wheel_premiums": {"config": {"delta_min": -0.1, "delta_max": -0.3}}}}


def break_webhook(receiver: WebhookReceiver, outage: str) -> None:
    """Every request from now on fails the way `outage` says (far more than will be sent)."""
    if outage == "server_error":
        receiver.fail_next(100, status=500)
    else:
        receiver.hang_next(100, seconds=5.0)


@pytest.mark.parametrize("outage", ["server_error", "hang"])
def test_dead_webhook_costs_one_warning_per_alert(outage, scratch_db, instance, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert materialize_universe(scratch_db, ["AAPL", "MSFT", "KO"], instance).success
    with WebhookReceiver() as receiver:
        break_webhook(receiver, outage)
        notifier = DiscordNotifier(
            webhook_url=receiver.webhook_url(),
            dedup_db_path=str(tmp_path / "dedup.db"),
            timeout_s=TIMEOUT_S,
            max_retries=MAX_RETRIES,
            backoff_s=0.01,
        )
        bound = {**resources(scratch_db), "notifier": notifier}
        scan = dg.materialize(
            [wheel_premiums], partition_key=SESSION, resources=bound, instance=instance
        )
        failed = dg.materialize(
            [wheel_premiums],
            partition_key=SESSION,
            resources=bound,
            instance=instance,
            run_config=INVERTED_BAND,
            raise_on_error=False,
        )

        started = time.monotonic()
        with dg.build_sensor_context(instance=instance, resources=bound) as context:
            scan_summary_sensor.evaluate_tick(context)
        failure_sensor = make_discord_on_run_failure_sensor()
        with dg.build_run_status_sensor_context(
            sensor_name=failure_sensor.name,
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"notifier": notifier},
        ) as context:
            failure_sensor(context)
        elapsed = time.monotonic() - started
        requests = receiver.requests

    assert scan.success and not failed.success
    attempts = MAX_RETRIES + 1
    assert len(requests) == ALERTS * attempts
    assert all(r.status == (500 if outage == "server_error" else None) for r in requests)
    warnings = [
        r
        for r in caplog.records
        if r.name.endswith("resources.notifier") and r.levelno >= logging.WARNING
    ]
    assert len(warnings) == ALERTS, [w.getMessage() for w in warnings]
    assert all(f"failed after {attempts} attempt(s)" in w.getMessage() for w in warnings)
    # Both ticks together: every attempt bounded by the timeout, plus backoff and slack.
    assert elapsed < ALERTS * attempts * (TIMEOUT_S + 0.5) + 3.0
