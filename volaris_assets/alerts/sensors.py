"""The price-alert sensor: every 60 s, the rules in `price_alerts` against the latest 1m bars.

The seed bot polled its alerts every 60 s; this is the same loop as a Dagster sensor, so its ticks,
skips and errors show in the UI. It launches no runs: each tick evaluates and posts.
"""

import dagster as dg

from volaris_assets.alerts.rules import Trigger, evaluate_alerts
from volaris_assets.calendar import NY
from volaris_assets.resources.notifier import DiscordNotifier, Severity
from volaris_assets.resources.warehouse import WarehouseResource

ALERT_INTERVAL_S = 60


def trigger_line(trigger: Trigger) -> str:
    sign = "≥" if trigger.direction == "above" else "≤"
    kind = f"repeating, trigger #{trigger.count}" if trigger.repeating else "one-shot"
    when = trigger.bar_ts.astimezone(NY).strftime("%Y-%m-%d %H:%M ET")
    note = f": {trigger.note}" if trigger.note else ""
    return (
        f"{trigger.symbol} last {trigger.price:.2f} {sign} {trigger.threshold:g} "
        f"(1m bar {when}), rule #{trigger.alert_id} ({kind}){note}"
    )


def post_triggers(notifier: DiscordNotifier, triggers: list[Trigger]) -> bool:
    """One message per tick listing every trigger of the tick: Discord takes about 30
    messages a minute per webhook, and a burst of alerts must not outlast the tick. The key
    carries each trigger's number, so a repeating rule's next crossing is a new message while a
    re-post of the same triggers is suppressed."""
    names = [f"{t.symbol} {t.direction} {t.threshold:g}" for t in triggers]
    return notifier.notify(
        ("Price alert: " if len(triggers) == 1 else "Price alerts: ") + ", ".join(names),
        "\n".join(trigger_line(t) for t in triggers),
        severity=Severity.WARNING,
        dedup_key="price-alerts:" + ",".join(f"{t.alert_id}#{t.count}" for t in triggers),
    )


@dg.sensor(
    name="price_alerts_sensor",
    minimum_interval_seconds=ALERT_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every 60 s: evaluate the `price_alerts` rules against the latest 1-minute "
    "closes and post each trigger to Discord once.",
)
def price_alerts_sensor(
    context: dg.SensorEvaluationContext,
    warehouse: WarehouseResource,
    notifier: DiscordNotifier,
) -> dg.SkipReason:
    with warehouse.open() as wh:
        triggers = evaluate_alerts(wh)
    fired = ", ".join(f"#{t.alert_id} {t.symbol}" for t in triggers) or "none"
    if triggers:
        context.log.info("price alerts fired: %s", fired)
        post_triggers(notifier, triggers)
    return dg.SkipReason(f"price alerts fired: {fired}")
