"""Price-alert rules: create them, and evaluate them against the latest 1-minute closes.

A trigger is claimed in the database before anyone is told: one conditional UPDATE disarms the
rule and counts the trigger, and only the evaluation whose UPDATE changed the row reports it. Two
sensor ticks racing on the same rule therefore post it once, and a tick that dies after the claim
loses one message rather than sending it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import sqlalchemy as sa

from volaris_assets.alerts.tables import price_alerts
from volaris_assets.symbols import normalize_symbol
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now

DIRECTIONS = ("above", "below")


@dataclass(frozen=True)
class Trigger:
    """One rule firing on one bar."""

    alert_id: int
    symbol: str
    direction: str
    threshold: float
    price: float
    bar_ts: datetime
    repeating: bool
    count: int
    note: str | None


def add_price_alert(
    warehouse: Warehouse,
    symbol: str,
    direction: str,
    threshold: float,
    *,
    repeating: bool = False,
    note: str | None = None,
    created_by: str | None = None,
) -> int:
    """Store a rule (the bot's write path); returns its id."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if not threshold > 0:
        raise ValueError(f"threshold must be positive, got {threshold!r}")
    with warehouse.transaction() as conn:
        result = conn.execute(
            sa.insert(price_alerts).values(
                symbol=normalize_symbol(symbol),
                direction=direction,
                threshold=float(threshold),
                repeating=repeating,
                armed=True,
                note=note,
                created_by=created_by,
                created_at=warehouse.instant(utc_now()),
                trigger_count=0,
            )
        )
        return int(result.inserted_primary_key[0])


def latest_closes(warehouse: Warehouse, symbols: list[str]) -> dict[str, tuple[datetime, float]]:
    """The newest 1-minute bar's (ts, close) per symbol."""
    if not symbols:
        return {}
    bars = tables.price_bars
    newest = (
        sa.select(bars.c.symbol, sa.func.max(bars.c.ts).label("ts"))
        .where(bars.c.timeframe == "1m", bars.c.symbol.in_(symbols))
        .group_by(bars.c.symbol)
        .subquery()
    )
    query = (
        sa.select(bars.c.symbol, bars.c.ts, bars.c.close)
        .join(
            newest,
            sa.and_(bars.c.symbol == newest.c.symbol, bars.c.ts == newest.c.ts),
        )
        .where(bars.c.timeframe == "1m")
    )
    with warehouse.engine.connect() as conn:
        return {symbol: (_utc(ts), float(close)) for symbol, ts, close in conn.execute(query)}


def _utc(value: object) -> datetime:
    """A stored instant as an aware UTC datetime (SQLite hands back naive UTC)."""
    stamp = pd.Timestamp(value)
    return (
        stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    ).to_pydatetime()


def crossed(direction: str, threshold: float, price: float) -> bool:
    """At or beyond the threshold, on the side the rule watches."""
    return price >= threshold if direction == "above" else price <= threshold


def evaluate_alerts(warehouse: Warehouse) -> list[Trigger]:
    """Fire every armed rule whose symbol's latest close crossed it; re-arm repeating rules
    whose price is back on the near side. Returns the triggers this call claimed."""
    with warehouse.engine.connect() as conn:
        rules = conn.execute(
            sa.select(price_alerts).where(
                sa.or_(price_alerts.c.armed.is_(True), price_alerts.c.repeating.is_(True))
            )
        ).all()
    prices = latest_closes(warehouse, sorted({rule.symbol for rule in rules}))
    fired: list[Trigger] = []
    for rule in rules:
        latest = prices.get(rule.symbol)
        if latest is None:
            continue
        bar_ts, price = latest
        hit = crossed(rule.direction, rule.threshold, price)
        if rule.armed and hit and _claim(warehouse, rule.id, price):
            fired.append(
                Trigger(
                    alert_id=rule.id,
                    symbol=rule.symbol,
                    direction=rule.direction,
                    threshold=rule.threshold,
                    price=price,
                    bar_ts=bar_ts,
                    repeating=bool(rule.repeating),
                    count=rule.trigger_count + 1,
                    note=rule.note,
                )
            )
        elif not rule.armed and rule.repeating and not hit:
            _rearm(warehouse, rule.id)
    return fired


def _claim(warehouse: Warehouse, alert_id: int, price: float) -> bool:
    """Disarm the rule if it is still armed. A reconnect that runs it again after its COMMIT
    went through finds the rule disarmed and claims nothing: that trigger loses its message
    rather than sending it twice."""
    claim = (
        sa.update(price_alerts)
        .where(price_alerts.c.id == alert_id, price_alerts.c.armed.is_(True))
        .values(
            armed=False,
            triggered_at=warehouse.instant(utc_now()),
            trigger_count=price_alerts.c.trigger_count + 1,
            last_trigger_price=price,
        )
    )
    return warehouse.run_transaction(lambda conn: conn.execute(claim).rowcount == 1)


def _rearm(warehouse: Warehouse, alert_id: int) -> None:
    warehouse.run_transaction(
        lambda conn: conn.execute(
            sa.update(price_alerts)
            .where(price_alerts.c.id == alert_id, price_alerts.c.repeating.is_(True))
            .values(armed=True)
        )
    )
