"""Asset-check failures (data quality and freshness) to Discord, on the pass→fail transition.

The sensor reads every check's recent evaluations from the instance and keeps, in its cursor, the
last known state of each (check, partition). It posts when a check starts failing and when it
recovers, not on every failing evaluation: a stale intraday asset re-checked every few minutes is
one message, not one per run. Evaluations are re-read over a short overlap so one committed late
by a concurrent run is not skipped; replays are recognised by their timestamp.

A recovery is only posted after a failure people saw: the state remembers, per check, whether
its failure message reached Discord (sent now, or already sent: a duplicate). A failure whose
message was lost (webhook down, rate limited) is announced again at its next failing
evaluation, and its recovery stays silent, since "Check recovered" out of nowhere only confuses.
The cursor (kept by the instance) holds this rather than the notifier's dedup store, which is
in memory, per tick, unless VOLARIS_NOTIFY_DEDUP_DB is set.
"""

import json
from dataclasses import dataclass

import dagster as dg

from volaris_assets.dagster_internals import AssetCheckExecutionRecordStatus, get_current_timestamp
from volaris_assets.monitoring.links import run_url
from volaris_assets.resources.notifier import DiscordNotifier, Sent, Severity

INTERVAL_S = 60
OVERLAP_S = 120.0
LOOKBACK_S = 3600.0
HISTORY_PER_CHECK = 100
MAX_TRACKED_FAILURES = 500
# Discord takes ~30 messages a minute per webhook and a tick has 60 s: beyond this many changes
# in one tick (a backfill failing a check on every partition), the rest go in one digest message.
MAX_POSTS_PER_TICK = 5
_DONE = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}


@dataclass(frozen=True)
class Evaluation:
    key: dg.AssetCheckKey
    partition: str | None
    passed: bool
    severity: dg.AssetCheckSeverity
    description: str | None
    run_id: str
    timestamp: float

    @property
    def ident(self) -> str:
        return f"{self.key.to_user_string()}|{self.partition or ''}"


def recent_evaluations(
    instance: dg.DagsterInstance, keys: list[dg.AssetCheckKey], since: float
) -> list[Evaluation]:
    """Completed evaluations of `keys` stored after `since`, oldest first."""
    found = []
    for key in keys:
        for record in instance.event_log_storage.get_asset_check_execution_history(
            key, limit=HISTORY_PER_CHECK
        ):
            if record.status not in _DONE or record.event is None:
                continue
            if record.event.timestamp <= since:
                break  # newest first: the rest are older still
            data = record.event.dagster_event.event_specific_data
            found.append(
                Evaluation(
                    key=key,
                    partition=data.partition,
                    passed=data.passed,
                    severity=data.severity,
                    description=data.description,
                    run_id=record.run_id,
                    timestamp=record.event.timestamp,
                )
            )
    return sorted(found, key=lambda e: e.timestamp)


@dataclass
class CheckStates:
    """The cursor: how far evaluations were read, and each tracked check's last state as
    (passed, evaluated at, failure seen by people)."""

    after: float
    states: dict[str, tuple[bool, float, bool]]

    @classmethod
    def load(cls, cursor: str | None) -> "CheckStates":
        if not cursor:
            return cls(after=0.0, states={})
        raw = json.loads(cursor)
        # Cursors written before the third element: their failures had been posted.
        states = {k: (v[0], v[1], v[2] if len(v) > 2 else True) for k, v in raw["states"].items()}
        return cls(after=raw["after"], states=states)

    def dump(self) -> str:
        # Passing states only matter while a replay of an older evaluation could still arrive.
        keep = {
            ident: state
            for ident, state in self.states.items()
            if not state[0] or state[1] > self.after - OVERLAP_S
        }
        failing = sorted((s[1], i) for i, s in keep.items() if not s[0])
        for _, ident in failing[:-MAX_TRACKED_FAILURES]:
            del keep[ident]
        return json.dumps({"after": self.after, "states": keep})

    def transition(self, evaluation: Evaluation) -> bool | None:
        """Record `evaluation`; True when a failure is to be announced (it starts, or its
        earlier announcement never reached anyone), False when a seen failure ends, None when
        there is nothing to say (same state, a replay, or the end of a failure nobody saw)."""
        previous = self.states.get(evaluation.ident)
        if previous is not None and evaluation.timestamp <= previous[1]:
            return None
        was_failing = previous is not None and not previous[0]
        seen = was_failing and previous[2]
        self.states[evaluation.ident] = (
            evaluation.passed,
            evaluation.timestamp,
            seen and not evaluation.passed,
        )
        self.after = max(self.after, evaluation.timestamp)
        if not evaluation.passed and not seen:
            return True
        if evaluation.passed and seen:
            return False
        return None

    def announced(self, evaluation: Evaluation, sent: Sent) -> None:
        """Record whether the failure message of `evaluation` reached people."""
        passed, timestamp, _ = self.states[evaluation.ident]
        self.states[evaluation.ident] = (passed, timestamp, sent.seen)


def post_transition(notifier: DiscordNotifier, evaluation: Evaluation, failed: bool) -> Sent:
    asset = evaluation.key.asset_key.to_user_string()
    where = f" [{evaluation.partition}]" if evaluation.partition else ""
    if failed:
        title = f"Check failed: {asset} · {evaluation.key.name}{where}"
        severity = (
            Severity.ERROR
            if evaluation.severity == dg.AssetCheckSeverity.ERROR
            else Severity.WARNING
        )
    else:
        title = f"Check recovered: {asset} · {evaluation.key.name}{where}"
        severity = Severity.SUCCESS
    return notifier.send(
        title,
        evaluation.description or "",
        severity=severity,
        fields={
            "Asset": asset,
            "Check": evaluation.key.name,
            **({"Partition": evaluation.partition} if evaluation.partition else {}),
            "Run": evaluation.run_id[:8],
        },
        url=run_url(evaluation.run_id),
        dedup_key=f"check:{evaluation.ident}:{evaluation.timestamp}",
    )


def post_overflow(notifier: DiscordNotifier, changes: list[tuple[Evaluation, bool]]) -> Sent:
    """One message for the changes beyond the per-tick budget."""
    lines = [
        f"{'failed' if failed else 'recovered'}: {e.key.to_user_string()}"
        + (f" [{e.partition}]" if e.partition else "")
        for e, failed in changes
    ]
    failures = sum(failed for _, failed in changes)
    return notifier.send(
        f"{len(changes)} more check changes ({failures} failures)",
        "\n".join(lines),
        severity=Severity.WARNING if failures else Severity.SUCCESS,
        dedup_key="checks:" + ",".join(f"{e.ident}:{e.timestamp}" for e, _ in changes),
    )


def make_check_failure_sensor(
    name: str = "asset_check_failure_sensor",
) -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Posts to Discord when an asset check (quality or freshness) starts failing "
        "and when it recovers.",
    )
    def _sensor(context: dg.SensorEvaluationContext, notifier: DiscordNotifier) -> dg.SkipReason:
        states = CheckStates.load(context.cursor)
        since = max(states.after - OVERLAP_S, get_current_timestamp() - LOOKBACK_S)
        keys = sorted(
            context.repository_def.asset_graph.asset_check_keys, key=lambda k: k.to_user_string()
        )
        changes = []
        for evaluation in recent_evaluations(context.instance, keys, since):
            change = states.transition(evaluation)
            if change is not None:
                changes.append((evaluation, change))
        for evaluation, failed in changes[:MAX_POSTS_PER_TICK]:
            sent = post_transition(notifier, evaluation, failed=failed)
            if failed:
                states.announced(evaluation, sent)
        if len(changes) > MAX_POSTS_PER_TICK:
            rest = changes[MAX_POSTS_PER_TICK:]
            sent = post_overflow(notifier, rest)
            for evaluation, failed in rest:
                if failed:
                    states.announced(evaluation, sent)
        context.update_cursor(states.dump())
        return dg.SkipReason(f"{len(changes)} check state change(s) posted")

    return _sensor
