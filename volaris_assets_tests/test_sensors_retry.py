"""The retry sensor on real runs: daily bars from a sandbox where symbols fail on both providers.

Dagster's clock is frozen and moved by hand, so the sensor's delays (1, 5, 15 minutes) are the
production ones and the test still takes seconds.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from volaris_assets.ingest.fanout import RETRYABLE_OUTCOMES
from volaris_assets.monitoring.retry import (
    RETRY_ATTEMPT_TAG,
    RETRY_OF_TAG,
    RetryTarget,
    make_retry_failed_symbols_sensor,
)
from volaris_assets.prices.assets import daily_bars
from volaris_assets.prices.definitions import daily_bars_job
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources, sandbox_market
from volaris_assets_tests.webhook_receiver import WebhookReceiver

PARTITION = "2026-03-10"
# Per request: 40% answer 5xx (retryable), 30% answer malformed JSON (bad data, permanent).
MIXED_FAULTS = "server_error=0.4,malformed=0.3"
T0 = datetime(2026, 3, 10, 22, 0, tzinfo=UTC)


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def setup(sqlite_warehouse_url, small_universe, clean_sandbox, receiver, tmp_path):
    market = MarketDataResource(
        capability="daily",
        **sandbox_market(clean_sandbox.settings(), "databento,alpaca", retry_attempts=1),
    )
    res = {
        **resources(sqlite_warehouse_url),
        "daily_data": market,
        "notifier": DiscordNotifier(
            webhook_url=receiver.webhook_url(), dedup_db_path=str(tmp_path / "dedup.db")
        ),
    }
    sensor = make_retry_failed_symbols_sensor(
        [RetryTarget(daily_bars, daily_bars_job, "daily_data")]
    )
    defs = dg.Definitions(
        assets=[sp500_constituents, daily_bars],
        jobs=[daily_bars_job],
        sensors=[sensor],
        resources=res,
    )
    return res, defs, sensor


def outcomes(url: str, run_id: str) -> dict[str, tuple[str, str | None, str | None]]:
    warehouse = Warehouse(url)
    frame = warehouse.read_frame(
        "SELECT symbol, status, error_type, error_message FROM sync_stock_results "
        f"WHERE run_id = '{run_id}'"
    )
    warehouse.dispose()
    return {r.symbol: (r.status, r.error_type, r.error_message) for r in frame.itertuples()}


class Driver:
    """Ticks the sensor and launches what it asks for, at chosen instants."""

    def __init__(self, instance, res, defs, sensor) -> None:
        self.instance, self.res, self.defs, self.sensor = instance, res, defs, sensor
        self.job = defs.resolve_job_def("daily_bars_job")
        self.cursor: str | None = None

    def tick(self, at: datetime) -> list[dg.RunRequest]:
        with (
            freeze_time(at),
            dg.build_sensor_context(
                instance=self.instance,
                cursor=self.cursor,
                definitions=self.defs,
                resources=self.res,
            ) as context,
        ):
            result = self.sensor.evaluate_tick(context)
        self.cursor = result.cursor
        return list(result.run_requests)

    def run(self, at: datetime, request: dg.RunRequest | None = None) -> dg.ExecuteInProcessResult:
        with freeze_time(at):
            return self.job.execute_in_process(
                instance=self.instance,
                partition_key=request.partition_key if request else PARTITION,
                run_config=request.run_config if request else {},
                tags=request.tags if request else {},
                raise_on_error=False,
            )


def test_retries_only_transient_failures_on_the_fallback_and_gives_up_after_three(
    setup, instance, clean_sandbox, receiver, sqlite_warehouse_url
):
    res, defs, sensor = setup
    drive = Driver(instance, res, defs, sensor)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    clean_sandbox.set_faults(MIXED_FAULTS)
    original = drive.run(T0).run_id

    first = outcomes(sqlite_warehouse_url, original)
    transient = sorted(s for s, (_, kind, _) in first.items() if kind in RETRYABLE_OUTCOMES)
    permanent = sorted(
        s
        for s, (status, kind, _) in first.items()
        if status != "ok" and kind not in RETRYABLE_OUTCOMES
        for s, (status, kind, _) in first.items()
        if status != "ok" and kind not in RETRYABLE_OUTCOMES
    )
    assert transient and permanent  # the fault draw gives both kinds: the selection matters

    assert drive.tick(T0 + timedelta(seconds=1)) == []  # queued, 60 s delay
    assert drive.tick(T0 + timedelta(seconds=59)) == []
    clean_sandbox.set_faults("server_error=1.0")
    at, run_ids = T0 + timedelta(seconds=61), [original]
    for attempt, wait_s, provider in (
        (1, 300, "alpaca"),
        (2, 900, "databento"),
        (3, None, "alpaca"),
    ):
        [request] = drive.tick(at)
        config = request.run_config["ops"]["daily_bars"]["config"]
        assert config == {"symbols": transient, "start_with_provider": provider}
        assert request.partition_key == PARTITION and request.job_name == "daily_bars_job"
        assert request.tags[RETRY_OF_TAG] == original
        assert request.tags[RETRY_ATTEMPT_TAG] == str(attempt)
        assert request.run_key == f"retry:{original}:daily_bars:{attempt}"
        retry = drive.run(at, request)
        # Every symbol failed: the run fails (below VOLARIS_MIN_SUCCESS_RATE), and the sensor
        # still follows it through its failed materialization.
        assert not retry.success
        run_ids.append(retry.run_id)
        retried = outcomes(sqlite_warehouse_url, retry.run_id)
        assert sorted(retried) == transient
        # The chain was rotated: the error lists the starting provider first.
        assert all(f"failed: {provider}=" in message for _, _, message in retried.values())
        assert drive.tick(at + timedelta(seconds=1)) == []  # seen: the next attempt is queued
        if wait_s is not None:
            assert drive.tick(at + timedelta(seconds=wait_s)) == []  # growing delay
            at += timedelta(seconds=wait_s + 2)

    assert drive.tick(at + timedelta(hours=1)) == []  # capped at three
    [gave_up] = [r.payload["embeds"][0] for r in receiver.requests]
    assert gave_up["title"] == f"Retries exhausted: daily_bars [{PARTITION}]"
    assert all(symbol in gave_up["description"] for symbol in transient)
    assert (
        len({run.tags.get(RETRY_OF_TAG) for run in map(instance.get_run_by_id, run_ids[1:])}) == 1
    )


def test_a_successful_retry_ends_the_lineage(setup, instance, clean_sandbox, receiver):
    res, defs, sensor = setup
    drive = Driver(instance, res, defs, sensor)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    clean_sandbox.set_faults(MIXED_FAULTS)
    drive.run(T0)
    drive.tick(T0)
    [request] = drive.tick(T0 + timedelta(seconds=61))
    clean_sandbox.set_faults("none")
    healed = drive.run(T0 + timedelta(seconds=62), request)
    assert healed.success
    assert drive.tick(T0 + timedelta(hours=2)) == []
    assert receiver.requests == []


def test_symbols_a_later_run_wrote_are_not_retried(setup, instance, clean_sandbox, receiver):
    """The window fetched again (say with another budget) before the retry came due: retrying
    would put the fallback provider's older fetch over the newer one."""
    res, defs, sensor = setup
    drive = Driver(instance, res, defs, sensor)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    clean_sandbox.set_faults(MIXED_FAULTS)
    drive.run(T0)
    assert drive.tick(T0 + timedelta(seconds=1)) == []  # queued, 60 s delay
    clean_sandbox.set_faults("none")
    assert drive.run(T0 + timedelta(seconds=30)).success  # every symbol written again
    assert drive.tick(T0 + timedelta(seconds=61)) == []
    assert receiver.requests == []
