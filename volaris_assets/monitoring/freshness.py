"""Freshness: Dagster's `FreshnessPolicy` on each asset, judged by the NYSE calendar before
anyone is told.

The policies (evaluated every 30 s by the daemon's FreshnessDaemon, shown on each asset's page;
`apply_freshness_policies` attaches them to the code location):
- Intraday assets (`intraday_bars`, `option_chains`): at every half hour of a weekday session
  (10:00 … 15:30 ET) the asset must have been updated since the half hour before, so the first
  check point, 10:00, counts the open as the last update.
- Daily assets (`daily_bars`, `iv_metrics`, `wheel_premiums`): by 18:00 ET on a weekday, updated
  since 18:00 the day before (after the 16:30-17:15 after-close jobs, with slack).
- Universe assets: weekly, not calendar-bound: refreshed within the week before Monday 07:00 ET.

A cron knows weekdays, not the exchange: on a holiday, or after an early close, Dagster's state
for a calendar-bound asset turns FAIL while the market is shut. So `freshness_alert_sensor`
reads each FRESHNESS_STATE_CHANGE and asks the calendar (the rules below: holidays and early
closes included) whether the asset is really stale now. A failure the calendar explains is held,
judged again on every tick, and posted only once the market has opened (or the session's
deadline passed) and the asset is still stale: a closed market never sends a stale alert.
A recovery is posted only after a failure people saw.

The calendar's rules are stricter than the crons where they can be: an intraday asset counts
only updates of the current session's partitions, a daily asset only the partition of the last
session past its deadline (a backfill of an old partition does not make it fresh).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import dagster as dg

from volaris_assets import calendar
from volaris_assets.resources.notifier import DiscordNotifier, Sent, Severity

DAILY_DEADLINE = time(18, 0)  # ET: after the 16:30-17:15 after-close jobs, with slack
INTRADAY_MAX_LAG = timedelta(minutes=30)
INTERVAL_S = 60
# Each tick reads at most this many state changes (the rest on the next tick).
EVENTS_PER_TICK = 500
_STALE = {"FAIL", "WARN"}

INTRADAY_POLICY = dg.FreshnessPolicy.cron(
    deadline_cron="0,30 10-15 * * 1-5",
    lower_bound_delta=INTRADAY_MAX_LAG,
    timezone="America/New_York",
)
DAILY_POLICY = dg.FreshnessPolicy.cron(
    deadline_cron=f"{DAILY_DEADLINE.minute} {DAILY_DEADLINE.hour} * * 1-5",
    lower_bound_delta=timedelta(hours=24),
    timezone="America/New_York",
)
UNIVERSE_POLICY = dg.FreshnessPolicy.cron(
    deadline_cron="0 7 * * 1", lower_bound_delta=timedelta(days=7), timezone="America/New_York"
)

KeysFor = Callable[[calendar.Session, datetime], list[str]]


@dataclass(frozen=True)
class Verdict:
    """The calendar's answer: is the asset stale at this instant, and why (for the message)."""

    stale: bool
    reason: str


def deadline(day: date) -> datetime:
    return datetime.combine(day, DAILY_DEADLINE, tzinfo=calendar.NY).astimezone(calendar.UTC)


def next_session(after: date) -> calendar.Session:
    """The first session strictly after `after` (holidays and weekends skipped)."""
    return calendar.sessions_between(after + timedelta(days=1), after + timedelta(days=10))[0]


def due_session(now: datetime) -> calendar.Session:
    """The latest session whose partition is due: today's once its deadline has passed."""
    today = now.astimezone(calendar.NY).date()
    if calendar.is_session(today) and deadline(today) <= now:
        return calendar.session(today)
    return calendar.previous_session(today)


def latest_update(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, partitions: list[str] | None
) -> float | None:
    """Timestamp of the newest materialization (of one of `partitions`, if given)."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=partitions), limit=1
    ).records
    return records[0].timestamp if records else None


def session_verdict(instance: dg.DagsterInstance, asset_key: dg.AssetKey, now: datetime) -> Verdict:
    """Stale when the partition of the latest session past its deadline is missing."""
    due = due_session(now)
    key = due.day.isoformat()
    if latest_update(instance, asset_key, [key]) is None:
        overdue = (now - deadline(due.day)).total_seconds() / 3600
        return Verdict(True, f"partition {key} is missing {overdue:.1f} h after its deadline")
    return Verdict(False, f"partition {key} present")


def intraday_verdict(
    instance: dg.DagsterInstance,
    asset_key: dg.AssetKey,
    now: datetime,
    keys_for: KeysFor,
    max_lag: timedelta = INTRADAY_MAX_LAG,
) -> Verdict:
    """Never stale while the market is closed; in a session, stale when neither an update of
    the session's partitions nor the open is within `max_lag`."""
    current = calendar.session_at(now)
    if current is None:
        return Verdict(False, "market closed: not expected to update")
    last = latest_update(instance, asset_key, keys_for(current, now))
    lag_min = (now.timestamp() - max(last or 0.0, current.open.timestamp())) / 60
    limit_min = max_lag.total_seconds() / 60
    if lag_min > limit_min:
        return Verdict(
            True, f"no update for {lag_min:.0f} min during the session (limit {limit_min:.0f})"
        )
    return Verdict(False, f"updated {lag_min:.0f} min ago")


def session_key(current: calendar.Session, now: datetime) -> list[str]:
    return [current.day.isoformat()]


def snapshot_keys(current: calendar.Session, now: datetime) -> list[str]:
    return [calendar.snapshot_key(t) for t in calendar.snapshot_times(current.day) if t <= now]


Judge = Callable[[dg.DagsterInstance, dg.AssetKey, datetime], Verdict]


def _intraday(keys_for: KeysFor) -> Judge:
    return lambda instance, key, now: intraday_verdict(instance, key, now, keys_for)


def _policy_says(instance: dg.DagsterInstance, key: dg.AssetKey, now: datetime) -> Verdict:
    return Verdict(True, "not refreshed within its freshness policy's window")


@dataclass(frozen=True)
class Watched:
    """An asset's policy and the calendar rule that judges its failures."""

    policy: dg.FreshnessPolicy
    judge: Judge


WATCHED: dict[str, Watched] = {
    "intraday_bars": Watched(INTRADAY_POLICY, _intraday(session_key)),
    "option_chains": Watched(INTRADAY_POLICY, _intraday(snapshot_keys)),
    "daily_bars": Watched(DAILY_POLICY, session_verdict),
    "iv_metrics": Watched(DAILY_POLICY, session_verdict),
    "wheel_premiums": Watched(DAILY_POLICY, session_verdict),
    "sp500_constituents": Watched(UNIVERSE_POLICY, _policy_says),
    "scan_universe": Watched(UNIVERSE_POLICY, _policy_says),
}


def with_policy(spec: dg.AssetSpec) -> dg.AssetSpec:
    watched = WATCHED.get(spec.key.to_user_string())
    return spec if watched is None else dg.apply_freshness_policy(spec, watched.policy)


def apply_freshness_policies(defs: dg.Definitions) -> dg.Definitions:
    """`defs` with each watched asset's policy attached: the domains define the assets, the
    policies and the calendar rules judging them live together here (the bulk form Dagster's own
    platform uses; `Definitions.map_asset_specs` is a preview API, see the README)."""
    return defs.map_asset_specs(func=with_policy)


@dataclass
class AlertState:
    """The cursor: the last state-change event read, the assets Dagster calls stale that are
    waiting for the calendar to agree (`held`), and those whose failure was posted."""

    after: int | None = None
    held: set[str] = field(default_factory=set)
    posted: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, cursor: str | None) -> AlertState:
        if not cursor:
            return cls()
        raw = json.loads(cursor)
        return cls(after=raw["after"], held=set(raw["held"]), posted=set(raw["posted"]))

    def dump(self) -> str:
        return json.dumps(
            {"after": self.after, "held": sorted(self.held), "posted": sorted(self.posted)}
        )


@dataclass(frozen=True)
class StateChange:
    asset: str
    new_state: str
    storage_id: int


def state_changes(instance: dg.DagsterInstance, after: int | None) -> list[StateChange]:
    """FRESHNESS_STATE_CHANGE events stored after `after`, oldest first (read from the event
    log storage: the instance's own `get_event_records` is deprecated)."""
    records = instance.event_log_storage.get_event_records(
        dg.EventRecordsFilter(
            event_type=dg.DagsterEventType.FRESHNESS_STATE_CHANGE, after_cursor=after
        ),
        limit=EVENTS_PER_TICK,
        ascending=True,
    )
    changes = []
    for record in records:
        data = record.event_log_entry.dagster_event.event_specific_data
        changes.append(
            StateChange(data.key.to_user_string(), str(data.new_state.value), record.storage_id)
        )
    return changes


def judge_changes(
    state: AlertState, changes: Iterable[StateChange], watched: Iterable[str]
) -> list[str]:
    """Fold `changes` into `state`; returns the assets whose posted failure has now ended."""
    recovered = []
    names = set(watched)
    for change in changes:
        state.after = change.storage_id
        if change.asset not in names:
            continue
        if change.new_state in _STALE:
            state.held.add(change.asset)
            continue
        state.held.discard(change.asset)
        if change.new_state == "PASS" and change.asset in state.posted:
            state.posted.discard(change.asset)
            recovered.append(change.asset)
    return recovered


def post(notifier: DiscordNotifier, asset: str, stale: Verdict | None) -> Sent:
    """A confirmed failure (`stale`), or the recovery of one (None)."""
    if stale is None:
        title, text, severity = (
            f"Fresh again: {asset}",
            "updated within its policy",
            Severity.SUCCESS,
        )
    else:
        title, text, severity = f"Stale: {asset}", stale.reason, Severity.WARNING
    return notifier.send(
        title,
        text,
        severity=severity,
        fields={"Asset": asset},
        dedup_key=f"freshness:{asset}:{'stale' if stale else 'fresh'}",
    )


def make_freshness_alert_sensor(
    clock: Callable[[], datetime] = lambda: datetime.now(calendar.UTC),
    watched: dict[str, Watched] = WATCHED,
    name: str = "freshness_alert_sensor",
) -> dg.SensorDefinition:
    """The sensor posting freshness failures the calendar confirms, and their recoveries.

    `clock` is "now" for the calendar's verdicts (tests pass a fixed instant).
    """

    @dg.sensor(
        name=name,
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts to Discord when an asset's freshness policy fails and the NYSE "
        "calendar agrees it is stale (never while the market is closed), and when it recovers.",
    )
    def _sensor(context: dg.SensorEvaluationContext, notifier: DiscordNotifier) -> dg.SkipReason:
        state = AlertState.load(context.cursor)
        changes = state_changes(context.instance, state.after)
        recovered = judge_changes(state, changes, watched)
        now = clock()
        waiting = []
        for asset in sorted(state.held):
            verdict = watched[asset].judge(context.instance, dg.AssetKey(asset), now)
            if not verdict.stale:
                waiting.append(f"{asset} ({verdict.reason})")
                continue
            if post(notifier, asset, verdict).seen:
                state.held.discard(asset)
                state.posted.add(asset)
        for asset in recovered:
            post(notifier, asset, None)
        context.update_cursor(state.dump())
        held = f"; held by the calendar: {', '.join(waiting)}" if waiting else ""
        return dg.SkipReason(
            f"{len(changes)} state change(s), {len(recovered)} recovery(ies){held}"
        )

    return _sensor


freshness_alert_sensor = make_freshness_alert_sensor()
