"""Freshness: Dagster's policies evaluated by its own FreshnessDaemon, judged by the calendar.

Materializations are reported to a real instance at frozen instants and the daemon's evaluation
runs at frozen instants too, so "Dagster calls it stale on Thanksgiving, the calendar does not"
is a fact of the event log, not an argument to a function. Alerts go over HTTP to the loopback
webhook receiver.
"""

import asyncio
from collections.abc import Iterator
from datetime import datetime

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.freshness import FreshnessDaemon

from volaris_assets import calendar
from volaris_assets.definitions import defs as location
from volaris_assets.monitoring.freshness import (
    WATCHED,
    apply_freshness_policies,
    intraday_verdict,
    make_freshness_alert_sensor,
    session_key,
    session_verdict,
    snapshot_keys,
)
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets_tests.monitoring_support import embeds, notifier_for
from volaris_assets_tests.webhook_receiver import WebhookReceiver

# What the daemon loads below: the watched assets' keys under the project's policies.
policy_defs = apply_freshness_policies(dg.Definitions(assets=[dg.AssetSpec(k) for k in WATCHED]))


def et(*args: int) -> datetime:
    return datetime(*args, tzinfo=calendar.NY)


def report(instance: dg.DagsterInstance, asset: str, partition: str, at: datetime) -> None:
    with freeze_time(at):
        instance.report_runless_asset_event(
            dg.AssetMaterialization(asset_key=asset, partition=partition)
        )


def test_the_location_puts_every_watched_asset_under_its_policy():
    nodes = {n.key.to_user_string(): n for n in location.resolve_asset_graph().asset_nodes}
    for name, watched in WATCHED.items():
        assert nodes[name].freshness_policy == watched.policy, name


CLOSED = [
    et(2026, 11, 28, 12, 0),  # Saturday
    et(2026, 11, 26, 11, 0),  # Thanksgiving, a weekday holiday
    et(2025, 12, 24, 13, 30),  # after the 13:00 early close
    et(2026, 11, 24, 9, 29),  # a session, before the open
    et(2026, 11, 24, 16, 0),  # the close itself
]


def test_intraday_assets_are_never_stale_while_the_market_is_closed(instance):
    # Nothing was ever materialized: only a closed market can make this fresh.
    for now in CLOSED:
        for asset, keys_for in ((intraday_bars, session_key), (option_chains, snapshot_keys)):
            verdict = intraday_verdict(instance, asset.key, now, keys_for)
            assert not verdict.stale and "market closed" in verdict.reason, (asset.key, now)


def test_intraday_bars_go_stale_30_minutes_after_the_last_update(instance):
    report(instance, "intraday_bars", "2025-12-23", et(2025, 12, 23, 15, 55))
    report(instance, "intraday_bars", "2025-12-24", et(2025, 12, 24, 10, 0))

    def stale(now: datetime) -> bool:
        return intraday_verdict(instance, intraday_bars.key, now, session_key).stale

    assert not stale(et(2025, 12, 24, 9, 50))  # the open counts as the last update
    assert not stale(et(2025, 12, 24, 10, 30))
    assert stale(et(2025, 12, 24, 10, 31))
    # Yesterday's partition updated later does not make today's session fresh.
    report(instance, "intraday_bars", "2025-12-23", et(2025, 12, 24, 10, 25))
    assert stale(et(2025, 12, 24, 10, 31))


def test_option_chains_count_only_this_sessions_snapshots(instance):
    report(instance, "option_chains", "2025-12-23-15:45", et(2025, 12, 23, 15, 46))

    def stale(now: datetime) -> bool:
        return intraday_verdict(instance, option_chains.key, now, snapshot_keys).stale

    assert stale(et(2025, 12, 24, 10, 5))
    report(instance, "option_chains", "2025-12-24-09:45", et(2025, 12, 24, 9, 46))
    assert not stale(et(2025, 12, 24, 10, 5))


def test_daily_freshness_expects_the_last_session_past_its_deadline(instance):
    verdict = lambda now: session_verdict(instance, daily_bars.key, now)  # noqa: E731
    report(instance, "daily_bars", "2026-11-25", et(2026, 11, 25, 17, 20))
    # Thanksgiving evening: Wednesday's session is the one due, and it is there.
    assert not verdict(et(2026, 11, 26, 19, 0)).stale
    # Friday (an early close) before its deadline: still Wednesday's; after it, Friday's.
    assert not verdict(et(2026, 11, 27, 17, 59)).stale
    overdue = verdict(et(2026, 11, 28, 10, 0))
    assert overdue.stale and "2026-11-27 is missing 16.0 h" in overdue.reason


@pytest.fixture
def daemon_workspace(instance) -> Iterator[object]:
    """The daemon's view of `policy_defs`, loaded in process as the small box loads code."""
    origin = LoadableTargetOrigin(module_name=__name__, attribute="policy_defs")
    target = InProcessWorkspaceLoadTarget(InProcessCodeLocationOrigin(origin, location_name="t"))
    with create_test_daemon_workspace_context(target, instance) as context:
        yield context


def test_a_holiday_failure_waits_for_the_open_and_its_recovery_follows(
    instance, daemon_workspace, tmp_path
):
    now: list[datetime] = []
    sensor = make_freshness_alert_sensor(clock=lambda: now[-1])
    daemon = FreshnessDaemon()

    def at(moment: datetime) -> None:
        """The daemon evaluates every policy at `moment`, then the sensor ticks."""
        now.append(moment)
        with freeze_time(moment):
            asyncio.run(daemon._evaluate_assets(workspace_process_context=daemon_workspace))
        with dg.build_sensor_context(
            instance=instance, cursor=cursor[-1], resources={"notifier": notifier}
        ) as context:
            result = sensor(context)
            cursor.append(context.cursor)
        reasons.append(result.skip_message)

    def state() -> str:
        return instance.get_freshness_state_records([intraday_bars.key])[
            intraday_bars.key
        ].freshness_state.value

    cursor: list[str | None] = [None]
    reasons: list[str] = []
    with WebhookReceiver() as receiver:
        notifier = notifier_for(receiver, tmp_path)
        report(instance, "intraday_bars", "2026-11-25", et(2026, 11, 25, 15, 55))
        at(et(2026, 11, 25, 15, 56))
        assert state() == "PASS" and not embeds(receiver)
        # Thanksgiving: the weekday cron expects an update, Dagster says FAIL; the calendar
        # knows the market is shut, so nobody is told.
        at(et(2026, 11, 26, 11, 0))
        assert state() == "FAIL"
        assert not embeds(receiver)
        assert "held by the calendar: intraday_bars (market closed" in reasons[-1]
        # Friday, 31 minutes after the open and still nothing: now it is stale.
        at(et(2026, 11, 27, 10, 1))
        assert [e["title"] for e in embeds(receiver)] == ["Stale: intraday_bars"]
        assert "no update for 31 min" in embeds(receiver)[0]["description"]
        at(et(2026, 11, 27, 10, 5))
        assert len(embeds(receiver)) == 1  # one message per failure, not one per tick
        report(instance, "intraday_bars", "2026-11-27", et(2026, 11, 27, 10, 10))
        at(et(2026, 11, 27, 10, 11))
        assert state() == "PASS"
        assert [e["title"] for e in embeds(receiver)][-1] == "Fresh again: intraday_bars"
        # Friday closed at 13:00; the cron's 13:30-15:30 ticks still expect updates, so on
        # Saturday Dagster says FAIL again. The market is shut: held, nobody is told.
        at(et(2026, 11, 28, 12, 0))
        assert state() == "FAIL" and len(embeds(receiver)) == 2
        assert "held by the calendar: intraday_bars (market closed" in reasons[-1]
