"""The price-alert sensor: every 15 s, the rules in `price_alerts` against the latest prices.

The seed bot polled its alerts every 60 s; this is the same loop as a Dagster sensor, so its ticks,
skips and errors show in the UI. It launches no runs: each tick evaluates and posts. Prices are
the quotes refreshed every REALTIME_JOB_INTERVAL_SECONDS (60 s), so a cross is noticed within
that interval, the quote run, and this sensor's interval: 60 + a few + 15 s, inside the 90 s the
seed's users expect. The tick is two indexed reads, cheap at four times a minute.
"""

from datetime import UTC, datetime

import dagster as dg

from volaris_assets.alerts.outbox import (
    ALERT_DELIVERY_TTL,
    SENT,
    SKIPPED,
    expire_stale,
    pending_triggers,
    record_delivery,
)
from volaris_assets.alerts.rules import QUOTE, Trigger, evaluate_alerts
from volaris_assets.calendar import NY
from volaris_assets.resources.notifier import DiscordNotifier, Sent, Severity
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse.store import Warehouse

ALERT_INTERVAL_S = 15


def trigger_line(trigger: Trigger) -> str:
    sign = "≥" if trigger.direction == "above" else "≤"
    kind = f"repeating, trigger #{trigger.count}" if trigger.repeating else "one-shot"
    clock = "%Y-%m-%d %H:%M:%S ET" if trigger.source == QUOTE else "%Y-%m-%d %H:%M ET"
    when = trigger.price_ts.astimezone(NY).strftime(clock)
    note = f": {trigger.note}" if trigger.note else ""
    return (
        f"{trigger.symbol} last {trigger.price:.2f} {sign} {trigger.threshold:g} "
        f"({trigger.source} {when}), rule #{trigger.alert_id} ({kind}){note}"
    )


def post_triggers(notifier: DiscordNotifier, triggers: list[Trigger]) -> Sent:
    """One message per tick listing the tick's triggers (at most MAX_PER_MESSAGE): Discord
    takes about 30 messages a minute per webhook, and a burst of alerts must not outlast the
    tick. The key carries each trigger's number, so a repeating rule's next crossing is a new
    message while a re-post of the same triggers is suppressed."""
    names = [f"{t.symbol} {t.direction} {t.threshold:g}" for t in triggers]
    return notifier.send(
        ("Price alert: " if len(triggers) == 1 else "Price alerts: ") + ", ".join(names),
        "\n".join(trigger_line(t) for t in triggers),
        severity=Severity.WARNING,
        dedup_key="price-alerts:" + ",".join(f"{t.alert_id}#{t.count}" for t in triggers),
    )


def deliver_pending(
    context: dg.SensorEvaluationContext, wh: Warehouse, notifier: DiscordNotifier
) -> str:
    """Post the triggers still waiting for their message (this tick's and any an earlier
    tick could not deliver) and record what became of them; returns a summary for the tick."""
    expired = expire_stale(wh, datetime.now(UTC))
    if expired:
        context.log.warning(
            "price alerts undelivered for %s, given up: %s",
            ALERT_DELIVERY_TTL,
            ", ".join(f"#{t.alert_id} {t.symbol} (trigger #{t.count})" for t in expired),
        )
    pending = pending_triggers(wh)
    if not pending:
        return "nothing to deliver"
    sent = post_triggers(notifier, pending)
    record_delivery(wh, pending, _DELIVERY.get(sent))
    if not sent.seen and sent is not Sent.SKIPPED:
        context.log.warning(
            "price alerts not delivered (%s); kept for the next tick: %s",
            sent,
            ", ".join(f"#{t.alert_id} {t.symbol}" for t in pending),
        )
    return f"{len(pending)} {sent}"


# What a message's outcome makes of its triggers; a failed send leaves them pending.
_DELIVERY = {Sent.SENT: SENT, Sent.DUPLICATE: SENT, Sent.SKIPPED: SKIPPED}


@dg.sensor(
    name="price_alerts_sensor",
    minimum_interval_seconds=ALERT_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Every {ALERT_INTERVAL_S} s: evaluate the `price_alerts` rules against the "
    "latest prices (the newer of the quote and the last 1-minute close) and post each trigger "
    "to Discord once; a trigger whose message failed is posted again on the next tick.",
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
        delivered = deliver_pending(context, wh, notifier)
    return dg.SkipReason(f"price alerts fired: {fired}; {delivered}")
