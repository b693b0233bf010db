"""`price_alerts`: the trader's price rules, part of the warehouse contract the bot writes to;
`price_alert_triggers`: each time a rule fired, and whether the message reached Discord.

Registered on the warehouse's own `metadata`, so `Warehouse.create_tables()` creates it with the
rest of the contract once this module is imported (the alerts sensor imports it).

A rule fires when the latest price (quote or 1-minute close) is at or beyond `threshold` in
`direction`. A
one-shot rule fires once and is done (`triggered_at` set, `armed` false for good); a repeating
rule re-arms when the price is back on the near side of the threshold, so it fires once per
crossing rather than once per minute.
"""

from __future__ import annotations

import sqlalchemy as sa

from volaris_assets.warehouse.tables import metadata

price_alerts = sa.Table(
    "price_alerts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("symbol", sa.String(12), nullable=False, index=True),
    sa.Column("direction", sa.String(5), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("repeating", sa.Boolean, nullable=False, default=False),
    sa.Column("armed", sa.Boolean, nullable=False, default=True),
    sa.Column("note", sa.String(200)),
    sa.Column("created_by", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("triggered_at", sa.DateTime(timezone=True)),
    sa.Column("trigger_count", sa.Integer, nullable=False, default=0),
    sa.Column("last_trigger_price", sa.Float),
    sa.CheckConstraint("direction IN ('above', 'below')", name="ck_price_alerts_direction"),
    sa.CheckConstraint("threshold > 0", name="ck_price_alerts_threshold"),
)

# One row per trigger, written in the transaction that claims it (disarms the rule): the
# sensor posts the rows not yet delivered and marks them, so a Discord outage delays an alert
# instead of losing it. `delivery`: sent (Discord accepted it, or had it already), skipped (no
# webhook configured), expired (undelivered for ALERT_DELIVERY_TTL; logged); NULL: pending.
price_alert_triggers = sa.Table(
    "price_alert_triggers",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True),
    sa.Column("trigger_number", sa.Integer, primary_key=True),
    sa.Column("symbol", sa.String(12), nullable=False),
    sa.Column("direction", sa.String(5), nullable=False),
    sa.Column("threshold", sa.Float, nullable=False),
    sa.Column("price", sa.Float, nullable=False),
    sa.Column("price_ts", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(8), nullable=False),
    sa.Column("repeating", sa.Boolean, nullable=False),
    sa.Column("note", sa.String(200)),
    sa.Column("triggered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("delivery", sa.String(8)),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Index("ix_price_alert_triggers_pending", "delivery", "triggered_at"),
)
