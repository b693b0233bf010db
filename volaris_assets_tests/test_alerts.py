"""Price alerts (rules in the warehouse, a 60 s sensor) and the morning digest."""

import threading
from datetime import UTC, date, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest

from volaris_assets import calendar
from volaris_assets.alerts.rules import add_price_alert, evaluate_alerts
from volaris_assets.alerts.sensors import price_alerts_sensor
from volaris_assets.monitoring.digest import daily_digest_job, daily_digest_schedule
from volaris_assets.prices.assets import daily_bars
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import embeds, notifier_for
from volaris_assets_tests.pipeline_support import resources
from volaris_assets_tests.webhook_receiver import WebhookReceiver

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


@pytest.fixture
def warehouse(warehouse_url):
    opened = Warehouse(warehouse_url)
    opened.create_tables()
    yield opened
    opened.dispose()


def minute_bar(warehouse: Warehouse, symbol: str, minutes: int, close: float) -> None:
    ts = T0 + timedelta(minutes=minutes)
    row = {
        "symbol": symbol,
        "timeframe": "1m",
        "ts": ts,
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "volume": 100,
        "provider": "test",
    }
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "price_bars", [row])


def alert_row(warehouse: Warehouse, alert_id: int) -> pd.Series:
    frame = warehouse.read_frame(f"SELECT * FROM price_alerts WHERE id = {int(alert_id)}")
    return frame.iloc[0]


def test_each_trigger_is_posted_once(warehouse, warehouse_url, instance, receiver, tmp_path):
    minute_bar(warehouse, "AAPL", 0, 100.0)
    minute_bar(warehouse, "MSFT", 0, 50.0)
    one_shot = add_price_alert(warehouse, "aapl", "above", 99)
    repeating = add_price_alert(warehouse, "MSFT", "below", 55, repeating=True, note="add more")
    quiet = add_price_alert(warehouse, "AAPL", "above", 150)
    add_price_alert(warehouse, "KO", "below", 10)  # no bars for KO: never evaluated
    res = {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "notifier": notifier_for(receiver, tmp_path),
    }

    def tick() -> list[str]:
        with dg.build_sensor_context(instance=instance, resources=res) as context:
            price_alerts_sensor.evaluate_tick(context)
        return [e["title"] for e in embeds(receiver)]

    assert tick() == ["Price alerts: AAPL above 99, MSFT below 55"]
    assert len(tick()) == 1  # the same bars: nothing new
    minute_bar(warehouse, "MSFT", 1, 60.0)  # back above: the repeating rule re-arms
    assert len(tick()) == 1
    minute_bar(warehouse, "MSFT", 2, 52.0)
    minute_bar(warehouse, "AAPL", 2, 98.0)
    assert tick()[1:] == ["Price alert: MSFT below 55"]
    minute_bar(warehouse, "AAPL", 3, 101.0)  # one-shot: done for good
    assert len(tick()) == 2

    second = embeds(receiver)[1]["description"]
    assert second.startswith("MSFT last 52.00 ≤ 55 (1m bar 2026-11-24 10:02 ET)")
    assert second.endswith(f"rule #{repeating} (repeating, trigger #2): add more")
    assert alert_row(warehouse, one_shot)["trigger_count"] == 1
    assert not alert_row(warehouse, one_shot)["armed"]
    assert alert_row(warehouse, repeating)["last_trigger_price"] == 52.0
    assert alert_row(warehouse, quiet)["trigger_count"] == 0


def test_a_trigger_whose_message_failed_is_posted_on_a_later_tick(
    warehouse, warehouse_url, instance, receiver, tmp_path
):
    """Discord answering 500 past the retries: the triggers stay pending (the rules stay
    claimed) and the next tick posts them; before, they were lost for good."""
    minute_bar(warehouse, "AAPL", 0, 100.0)
    one_shot = add_price_alert(warehouse, "AAPL", "above", 99)
    repeating = add_price_alert(warehouse, "AAPL", "above", 95, repeating=True)
    res = {
        "warehouse": WarehouseResource(database_url=warehouse_url),
        "notifier": notifier_for(receiver, tmp_path),
    }

    def tick() -> str:
        with dg.build_sensor_context(instance=instance, resources=res) as context:
            return str(price_alerts_sensor.evaluate_tick(context).skip_message)

    def deliveries() -> list[tuple]:
        frame = warehouse.read_frame(
            "SELECT alert_id, trigger_number, delivery, attempts FROM price_alert_triggers "
            "ORDER BY alert_id"
        )
        return [tuple(row) for row in frame.itertuples(index=False)]

    receiver.fail_next(4, status=500)  # the first try and its three retries
    assert "2 failed" in tick()
    assert embeds(receiver) == []
    assert deliveries() == [(one_shot, 1, None, 1), (repeating, 1, None, 1)]
    assert not alert_row(warehouse, one_shot)["armed"]  # claimed once, not again

    assert "2 sent" in tick()
    (posted,) = embeds(receiver)
    assert posted["title"] == "Price alerts: AAPL above 99, AAPL above 95"
    assert deliveries() == [(one_shot, 1, "sent", 2), (repeating, 1, "sent", 2)]
    assert "nothing to deliver" in tick() and len(embeds(receiver)) == 1


def test_a_trigger_undelivered_for_a_day_is_expired(warehouse):
    from volaris_assets.alerts.outbox import EXPIRED, expire_stale, pending_triggers

    minute_bar(warehouse, "AAPL", 0, 100.0)
    alert = add_price_alert(warehouse, "AAPL", "above", 99)
    (claimed,) = evaluate_alerts(warehouse)
    assert pending_triggers(warehouse) == [claimed]
    assert expire_stale(warehouse, datetime.now(UTC)) == []
    (expired,) = expire_stale(warehouse, datetime.now(UTC) + timedelta(hours=25))
    assert expired == claimed and pending_triggers(warehouse) == []
    row = warehouse.read_frame("SELECT * FROM price_alert_triggers").iloc[0]
    assert (row["alert_id"], row["delivery"]) == (alert, EXPIRED)


def test_concurrent_evaluations_claim_each_trigger_once(warehouse, warehouse_url):
    for i, symbol in enumerate(("AAPL", "MSFT", "NVDA", "KO")):
        minute_bar(warehouse, symbol, 0, 100.0 + i)
        add_price_alert(warehouse, symbol, "above", 50)
    fired: list[int] = []
    lock = threading.Lock()

    def evaluate() -> None:
        own = Warehouse(warehouse_url)
        triggers = evaluate_alerts(own)
        own.dispose()
        with lock:
            fired.extend(t.alert_id for t in triggers)

    threads = [threading.Thread(target=evaluate) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(fired) == sorted(set(fired)) and len(fired) == 4


def test_bad_rules_are_refused(warehouse):
    with pytest.raises(ValueError, match="direction"):
        add_price_alert(warehouse, "AAPL", "sideways", 10)
    for threshold in (0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="threshold"):
            add_price_alert(warehouse, "AAPL", "above", threshold)
    with pytest.raises(ValueError):
        add_price_alert(warehouse, "'; DROP TABLE price_alerts;--", "above", 10)


def range_tags(start: str, end: str) -> dict[str, str]:
    return {
        "dagster/asset_partition_range_start": start,
        "dagster/asset_partition_range_end": end,
    }


def test_the_morning_digest(sqlite_warehouse_url, small_universe, instance, receiver, tmp_path):
    res = {**resources(sqlite_warehouse_url), "notifier": notifier_for(receiver, tmp_path)}
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    dg.materialize(
        [daily_bars],
        tags=range_tags("2026-11-23", "2026-11-24"),
        resources=res,
        instance=instance,
    )
    # 21 sessions: IV rank needs 20 observations.
    dg.materialize(
        [iv_metrics],
        tags=range_tags("2026-10-26", "2026-11-24"),
        resources=res,
        instance=instance,
    )

    def digest(waits: list[float]) -> dg.ExecuteInProcessResult:
        config = {"day": "2026-11-25", "retry_waits_s": waits}
        return daily_digest_job.execute_in_process(
            instance=instance,
            resources=res,
            run_config={"ops": {"post_daily_digest": {"config": config}}},
            raise_on_error=False,
        )

    receiver.fail_next(8, status=502)  # refused past the last wait: the run fails, by name
    refused = digest([0.01])
    assert not refused.success
    failure = refused.get_step_failure_events()[0].step_failure_data.error.message
    assert "Discord refused the digest for 2026-11-24: 2 posts" in failure

    receiver.fail_next(8, status=502)  # two posts of four tries each refused, then taken
    result = digest([0.01, 0.01])
    assert result.success
    assert [r.status for r in receiver.requests] == [502] * 16 + [200]

    market = SimulatedMarket()
    closes = {
        s: [
            market.minute_bars(s, day)["close"].iloc[-1]
            for day in (date(2026, 11, 23), date(2026, 11, 24))
        ]
        for s in small_universe
    }
    moves = sorted(((c[1] / c[0] - 1, s) for s, c in closes.items()), reverse=True)
    [embed] = embeds(receiver)
    assert embed["title"] == "Daily digest for Tue 2026-11-24"
    fields = {f["name"]: f["value"].splitlines() for f in embed["fields"]}
    gainers = [(m, s) for m, s in moves if m > 0][:5]
    assert [line.split()[0] for line in fields.get("Top gainers", [])] == [s for _, s in gainers]
    assert fields["Top gainers"][0].split()[1] == f"{gainers[0][0]:+.2%}"
    iv = Warehouse(sqlite_warehouse_url).read_frame(
        "SELECT symbol, iv_rank FROM iv_metrics WHERE date = '2026-11-24' ORDER BY iv_rank DESC"
    )
    assert iv["iv_rank"].notna().all()
    *ranks, history = fields["Highest IV rank"]
    assert [line.split()[0] for line in ranks] == list(iv["symbol"][:5])
    sessions = len(calendar.sessions_between(date(2026, 10, 26), date(2026, 11, 24)))
    assert history == f"(ranks over {sessions} of 252 sessions of IV history)"
    assert len(fields["Highest IV (30-day ATM)"]) == 5
    assert len(fields["Biggest IV changes"]) == 5
    assert embed["url"].endswith("/assets/iv_metrics")


@pytest.mark.parametrize(
    ("tick", "day"),
    [
        (datetime(2026, 11, 25, 9, 30, tzinfo=calendar.NY), "2026-11-25"),
        (datetime(2026, 11, 26, 9, 30, tzinfo=calendar.NY), None),  # Thanksgiving
    ],
)
def test_the_digest_is_scheduled_on_sessions_only(tick, day):
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    outcome = daily_digest_schedule(context)
    if day is None:
        assert isinstance(outcome, dg.SkipReason)
    else:
        assert outcome.run_config["ops"]["post_daily_digest"]["config"]["day"] == day
