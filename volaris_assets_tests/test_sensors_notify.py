"""Sensors that tell people: run failures, check failures, the scan summary and the Schwab token
warning, each against real runs on a real instance and a loopback Discord webhook."""

import csv
import io
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from volaris_assets import calendar
from volaris_assets.monitoring.check_alerts import MAX_POSTS_PER_TICK, make_check_failure_sensor
from volaris_assets.monitoring.run_failure import (
    DISCORD_TAG,
    PENDING,
    SENT,
    make_discord_on_run_failure_sensor,
    make_run_failure_retry_sensor,
)
from volaris_assets.monitoring.scan_summary import scan_summary_sensor
from volaris_assets.monitoring.schwab_token import make_schwab_token_sensor
from volaris_assets.options.assets import option_chains
from volaris_assets.options.checks import option_checks
from volaris_assets.prices.assets import daily_bars
from volaris_assets.prices.checks import price_checks
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.definitions import wheel_scan_job
from volaris_assets.scan.results_csv import CSV_NAME
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import (
    embeds,
    execute,
    notifier_for,
    run_checks,
    scalar,
)
from volaris_assets_tests.pipeline_support import SESSION, SNAPSHOT, resources, sandbox_market
from volaris_assets_tests.sandbox_fixtures import SANDBOX_SESSION
from volaris_assets_tests.webhook_receiver import WebhookReceiver

UI = "https://dagster.example.test"
daily_coverage = dg.AssetCheckKey(dg.AssetKey("daily_bars"), "symbol_coverage")


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


def tick(sensor, instance, res, cursor=None, definitions=None):
    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources=res, definitions=definitions
    ) as context:
        return sensor.evaluate_tick(context)


def on_failure(sensor, failed, instance, notifier) -> None:
    """Evaluate the run-failure sensor on `failed` as the daemon would."""
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=failed.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=failed.dagster_run,
        resources={"notifier": notifier},
    ) as context:
        sensor(context)


def test_a_failed_run_is_posted_once_with_error_partition_and_link(
    sqlite_warehouse_url, small_universe, instance, receiver, tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_UI_URL", UI + "/")
    res = resources(sqlite_warehouse_url)
    defs = dg.Definitions(
        assets=[scan_universe, wheel_premiums], jobs=[wheel_scan_job], resources=res
    )
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    failed = defs.resolve_job_def("wheel_scan_job").execute_in_process(
        instance=instance,
        partition_key=SESSION,
        run_config={"ops": {"wheel_premiums": {"config": {"delta_min": -0.1, "delta_max": -0.3}}}},
        raise_on_error=False,
    )
    assert not failed.success
    sensor = make_discord_on_run_failure_sensor()
    notifier = notifier_for(receiver, tmp_path)
    for _ in range(2):  # the daemon may evaluate the same failure twice (restarts): one post
        on_failure(sensor, failed, instance, notifier)

    [embed] = embeds(receiver)
    assert embed["title"] == "Run failed: wheel_scan_job (wheel_premiums)"
    assert "invalid wheel scan config" in embed["description"]
    assert "delta band" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Partition"] == SESSION and fields["Assets"] == "wheel_premiums"
    assert embed["url"] == f"{UI}/runs/{failed.run_id}"
    assert receiver.token not in str(receiver.requests[0].payload)


@dg.asset
def broken() -> None:
    raise RuntimeError("upstream exploded")


def test_a_notifier_failure_never_fails_the_tick(instance, receiver, tmp_path):
    sensor = make_discord_on_run_failure_sensor()
    failed = dg.materialize([broken], instance=instance, raise_on_error=False)
    receiver.fail_next(10, status=502)
    on_failure(sensor, failed, instance, notifier_for(receiver, tmp_path))  # must not raise
    assert len(receiver.requests) == 4 and embeds(receiver) == []  # 1 try + 3 retries


def test_a_failed_run_whose_message_failed_is_posted_again(instance, receiver, tmp_path):
    """Dagster moves the run-failure sensor past the run whatever happened: the run is tagged
    pending, and the retry sensor posts it once Discord answers (before: lost for good)."""
    failed = dg.materialize([broken], instance=instance, raise_on_error=False)
    notifier = notifier_for(receiver, tmp_path)
    receiver.fail_next(4, status=500)
    on_failure(make_discord_on_run_failure_sensor(), failed, instance, notifier)
    assert embeds(receiver) == []
    assert instance.get_run_by_id(failed.run_id).tags[DISCORD_TAG] == PENDING

    retry = make_run_failure_retry_sensor()

    def tick() -> str:
        with dg.build_sensor_context(instance=instance, resources={"notifier": notifier}) as ctx:
            return str(retry.evaluate_tick(ctx).skip_message)

    receiver.fail_next(4, status=500)
    assert tick().endswith("still pending: 1") and embeds(receiver) == []
    assert tick().startswith(f"posted again: {failed.run_id[:8]} (sent)")
    [embed] = embeds(receiver)
    assert embed["title"] == "Run failed: __ephemeral_asset_job__ (broken)"
    assert "upstream exploded" in embed["description"]
    assert instance.get_run_by_id(failed.run_id).tags[DISCORD_TAG] == SENT
    assert tick() == "posted again: none; still pending: 0" and len(embeds(receiver)) == 1


def test_check_failures_post_on_transition_only(
    sqlite_warehouse_url, small_universe, instance, receiver, tmp_path
):
    url = sqlite_warehouse_url
    res = resources(url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    dg.materialize(
        [option_chains, *option_checks], partition_key=SNAPSHOT, resources=res, instance=instance
    )
    sensor = make_check_failure_sensor()
    defs = dg.Definitions(
        assets=[option_chains], asset_checks=option_checks, sensors=[sensor], resources=res
    )
    notify = {"notifier": notifier_for(receiver, tmp_path)}

    cursor = tick(sensor, instance, notify, definitions=defs).cursor
    assert embeds(receiver) == []  # passing checks: nothing to say

    occ = scalar(url, "SELECT min(occ_symbol) FROM option_snapshots")
    ask = scalar(url, "SELECT ask FROM option_snapshots WHERE occ_symbol = :o", o=occ)
    execute(url, "UPDATE option_snapshots SET bid = ask + 1 WHERE occ_symbol = :o", o=occ)
    for _ in range(2):  # failing twice is one failure
        run_checks(option_checks, instance, res, SNAPSHOT)
        cursor = tick(sensor, instance, notify, cursor, defs).cursor
    [failure] = embeds(receiver)
    assert failure["title"] == f"Check failed: option_chains · quotes_not_crossed [{SNAPSHOT}]"
    assert "crossed=1" in failure["description"]

    execute(url, "UPDATE option_snapshots SET bid = :b WHERE occ_symbol = :o", o=occ, b=ask - 0.1)
    run_checks(option_checks, instance, res, SNAPSHOT)
    tick(sensor, instance, notify, cursor, defs)
    assert [e["title"] for e in embeds(receiver)][1:] == [
        f"Check recovered: option_chains · quotes_not_crossed [{SNAPSHOT}]"
    ]


def test_a_burst_of_check_failures_stays_within_the_posting_budget(
    sqlite_warehouse_url, instance, receiver, tmp_path
):
    res = resources(sqlite_warehouse_url)
    coverage = [c for c in price_checks if c.check_keys == {daily_coverage}]
    sessions = [
        s.day.isoformat() for s in calendar.sessions_between(date(2026, 11, 12), date(2026, 11, 20))
    ]
    for key in sessions:  # nothing was ever ingested: every partition fails coverage
        assert not run_checks(coverage, instance, res, key)["daily_bars:symbol_coverage"].passed
    sensor = make_check_failure_sensor()
    defs = dg.Definitions(
        assets=[daily_bars], asset_checks=coverage, sensors=[sensor], resources=res
    )
    tick(sensor, instance, {"notifier": notifier_for(receiver, tmp_path)}, definitions=defs)
    titles = [e["title"] for e in embeds(receiver)]
    assert len(sessions) == 7 and len(titles) == MAX_POSTS_PER_TICK + 1
    assert titles[:MAX_POSTS_PER_TICK] == [
        f"Check failed: daily_bars · symbol_coverage [{key}]" for key in sessions[:5]
    ]
    assert titles[-1] == "2 more check changes (2 failures)"


def test_scan_summary_posts_counts_top_premiums_and_the_results_csv(
    sqlite_warehouse_url, small_universe, instance, receiver, tmp_path, clean_sandbox
):
    chain = MarketDataResource(
        capability="chain",
        **sandbox_market(clean_sandbox.settings(), "schwab", retry_attempts=1),
        min_success_rate=0.0,  # a scan with failures is what the summary has to report
    )
    res = {**resources(sqlite_warehouse_url), "chain_data": chain}
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    clean_sandbox.set_faults("server_error=0.4")
    scan = dg.materialize(
        [wheel_premiums], partition_key=SANDBOX_SESSION, resources=res, instance=instance
    )
    notify = {"notifier": notifier_for(receiver, tmp_path)}

    receiver.fail_next(4, status=503)  # Discord down for one tick: posted on the next
    refused = tick(scan_summary_sensor, instance, notify)
    assert "posted again next tick" in str(refused.skip_message) and embeds(receiver) == []
    first = tick(scan_summary_sensor, instance, notify, refused.cursor)
    tick(scan_summary_sensor, instance, notify, first.cursor)  # seen: not posted again
    tick(scan_summary_sensor, instance, notify)  # a reset cursor re-reads: the notifier dedups

    warehouse = Warehouse(sqlite_warehouse_url)
    failed = warehouse.read_frame(
        "SELECT symbol, error_type FROM sync_stock_results WHERE status != 'ok'"
    )
    warehouse.dispose()
    assert 0 < len(failed) < len(small_universe)
    [request] = [r for r in receiver.requests if r.status and r.status < 300]
    embed = request.payload["embeds"][0]
    ok = len(small_universe) - len(failed)
    assert embed["title"].startswith(
        f"Wheel scan {SANDBOX_SESSION}: {ok}/{len(small_universe)} symbols ok"
    )
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Failures by category"] == f"server_error: {len(failed)}"
    assert fields["Failed"] == str(len(failed))
    best = scan.asset_materializations_for_node("wheel_premiums")[0].metadata["top_premiums"].value
    assert best and embed["description"].startswith(best[0]["symbol"])
    attached = request.files[CSV_NAME].content
    rows = list(csv.DictReader(io.StringIO(attached.decode())))
    assert sorted(r["symbol"] for r in rows) == sorted(small_universe)  # every symbol
    assert sorted(r["symbol"] for r in rows if r["status"] != "ok") == sorted(failed["symbol"])
    written = Path(instance.storage_directory()) / scan.run_id / CSV_NAME
    assert written.read_bytes() == attached


ISSUED = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (ISSUED + timedelta(days=4), None),
        (ISSUED + timedelta(days=5, hours=1), "Schwab refresh token expires soon"),
        (ISSUED + timedelta(days=7, hours=1), "Schwab refresh token expired"),
    ],
)
def test_schwab_refresh_token_warning(instance, receiver, tmp_path, now, expected):
    secret = "sbx-refresh-token-that-must-not-leak"
    chain = MarketDataResource(
        capability="chain",
        providers="schwab,simulated",
        schwab_app_key="sbx-app-key-0001",
        schwab_secret_key="sbx-secret-0001",
        schwab_refresh_token=secret,
        schwab_refresh_token_issued_at=ISSUED.isoformat(),
    )
    res = {
        "chain_data": chain,
        "intraday_data": MarketDataResource(capability="intraday"),
        "daily_data": MarketDataResource(capability="daily"),
        "notifier": notifier_for(receiver, tmp_path),
    }
    sensor = make_schwab_token_sensor()
    with freeze_time(now):
        first = tick(sensor, instance, res)
        tick(sensor, instance, res, first.cursor)  # the same day: warned once
    titles = [e["title"] for e in embeds(receiver)]
    assert titles == ([expected] if expected else [])
    assert all(secret not in r.body.decode() for r in receiver.requests)


def test_schwab_warning_needs_the_issue_time(instance, receiver, tmp_path):
    chain = MarketDataResource(
        capability="chain",
        providers="schwab",
        schwab_app_key="sbx-app-key-0001",
        schwab_secret_key="sbx-secret-0001",
        schwab_refresh_token="sbx-refresh-token-0001",
    )
    res = {
        "chain_data": chain,
        "intraday_data": MarketDataResource(capability="intraday"),
        "daily_data": MarketDataResource(capability="daily"),
        "notifier": notifier_for(receiver, tmp_path),
    }
    result = tick(make_schwab_token_sensor(), instance, res)
    assert "SCHWAB_REFRESH_TOKEN_ISSUED_AT unset" in result.skip_message
    assert receiver.requests == []


def test_a_run_that_failed_outside_any_step_says_why(instance):
    """A broker gone mid-run fails the run, not a step: Dagster's message alone says only that
    an exception was thrown; the message carries the error's innermost cause."""
    from volaris_assets.dagster_internals import JobFailureData, SerializableErrorInfo
    from volaris_assets.monitoring.run_failure import FailedRun, failure_message

    run = dg.materialize([fine], instance=instance).dagster_run
    cause = SerializableErrorInfo("amqp.exceptions.ConnectionForced: broker gone\n", [], "X")
    outer = SerializableErrorInfo("DagsterExecutionInterruptedError\n", [], "Y", cause=cause)
    instance.report_run_failed(
        run,
        "Execution of run failed. An exception was thrown during execution.",
        JobFailureData(error=outer, failure_reason=None, first_step_failure_event=None),
    )
    _, description, _ = failure_message(FailedRun.of(instance, run))
    assert description.startswith("Execution of run failed. An exception was thrown")
    assert description.endswith("amqp.exceptions.ConnectionForced: broker gone")


@dg.asset
def fine() -> None:
    pass
