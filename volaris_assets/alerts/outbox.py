"""Triggers waiting for their message: `price_alert_triggers` rows not yet delivered.

A trigger is recorded when it is claimed (`rules._claim`) and marked here once Discord accepted
its message, so an outage of the webhook (a 5xx, a 429 past the retries, a timeout) delays the
alert to a later tick rather than losing it; the repeating rule's count and the one-shot's
disarming stand as claimed. A trigger that cannot be delivered for ALERT_DELIVERY_TTL is
marked expired and logged: a day-old price alert is no longer a signal to act on, and a
webhook that stays broken must not grow a backlog that floods the channel once it is mended.
Delivery is at least once: a post whose answer was lost (a timeout after Discord saved it) is
posted again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from volaris_assets.alerts.rules import Trigger
from volaris_assets.warehouse.store import Warehouse, utc_now
from volaris_assets.warehouse.tables import price_alert_triggers

ALERT_DELIVERY_TTL = timedelta(hours=24)
# Triggers per message: ~120 characters a line keeps a message inside Discord's 4,096-character
# embed description; a longer backlog goes out over the next ticks.
MAX_PER_MESSAGE = 25
SENT, SKIPPED, EXPIRED = "sent", "skipped", "expired"

_TRIGGERS = price_alert_triggers
_PENDING = _TRIGGERS.c.delivery.is_(None)


def pending_triggers(warehouse: Warehouse, limit: int = MAX_PER_MESSAGE) -> list[Trigger]:
    """The oldest triggers not yet delivered, in the order they fired."""
    return _select(warehouse, _PENDING, limit)


def record_delivery(warehouse: Warehouse, triggers: list[Trigger], delivery: str | None) -> None:
    """Count an attempt at `triggers`' message; `delivery` (SENT, SKIPPED) closes them, None
    leaves them pending for the next tick."""
    if not triggers:
        return
    values: dict[str, object] = {"attempts": _TRIGGERS.c.attempts + 1}
    if delivery is not None:
        values |= {"delivery": delivery, "delivered_at": warehouse.instant(utc_now())}
    update = sa.update(_TRIGGERS).where(_PENDING, _keys_in(triggers)).values(**values)
    warehouse.run_transaction(lambda conn: conn.execute(update))


def expire_stale(warehouse: Warehouse, now: datetime) -> list[Trigger]:
    """Mark EXPIRED the triggers pending since before `now` - ALERT_DELIVERY_TTL; returns them
    for the caller to log."""
    cutoff = warehouse.instant(now - ALERT_DELIVERY_TTL)
    stale = _select(warehouse, sa.and_(_PENDING, _TRIGGERS.c.triggered_at < cutoff), None)
    if stale:
        update = (
            sa.update(_TRIGGERS)
            .where(_PENDING, _keys_in(stale))
            .values(delivery=EXPIRED, delivered_at=warehouse.instant(now))
        )
        warehouse.run_transaction(lambda conn: conn.execute(update))
    return stale


def _select(
    warehouse: Warehouse, where: sa.ColumnElement[bool], limit: int | None
) -> list[Trigger]:
    query = (
        sa.select(_TRIGGERS)
        .where(where)
        .order_by(_TRIGGERS.c.triggered_at, _TRIGGERS.c.alert_id, _TRIGGERS.c.trigger_number)
        .limit(limit)
    )
    with warehouse.engine.connect() as conn:
        rows = conn.execute(query).all()
    return [Trigger.from_row(row) for row in rows]


def _keys_in(triggers: list[Trigger]) -> sa.ColumnElement[bool]:
    key = sa.tuple_(_TRIGGERS.c.alert_id, _TRIGGERS.c.trigger_number)
    return key.in_([(t.alert_id, t.count) for t in triggers])
