"""Price-alert rules: create them, and evaluate them against the latest price of each symbol.

The latest price is the newer of the symbol's quote (`quotes`, refreshed every minute in market
hours) and its last 1-minute bar's close (`price_bars`): quotes make a cross noticed within a
refresh, and bars still serve a symbol whose quotes are not running.

A trigger is claimed in the database before anyone is told: one conditional UPDATE disarms the
rule and counts the trigger, and the same transaction records the trigger in
`price_alert_triggers`, where it waits until its message is delivered (`alerts.outbox`). Two
sensor ticks racing on the same rule therefore claim it once, and a tick that dies after the
claim, or a Discord that refuses the message, delays the alert to a later tick instead of
losing it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa

from volaris_assets.symbols import normalize_symbol
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now
from volaris_assets.warehouse.tables import price_alert_triggers, price_alerts

DIRECTIONS = ("above", "below")


# Where a price came from, as a trigger's message names it.
QUOTE, MINUTE_BAR = "quote", "1m bar"
BAR_LENGTH = timedelta(minutes=1)


@dataclass(frozen=True)
class Price:
    """A symbol's latest price, when it was observed and from what."""

    ts: datetime
    price: float
    source: str


@dataclass(frozen=True)
class Trigger:
    """One rule firing on one price."""

    alert_id: int
    symbol: str
    direction: str
    threshold: float
    price: float
    price_ts: datetime
    source: str
    repeating: bool
    count: int
    note: str | None

    def as_row(self) -> dict[str, Any]:
        """The `price_alert_triggers` columns the trigger itself fills."""
        row = asdict(self)
        row["trigger_number"] = row.pop("count")
        return row

    @classmethod
    def from_row(cls, row: Any) -> Trigger:
        """A trigger read back from `price_alert_triggers`."""
        values = {f.name: getattr(row, f.name) for f in fields(cls) if f.name != "count"}
        values |= {"price_ts": as_utc(row.price_ts), "repeating": bool(row.repeating)}
        return cls(**values, count=row.trigger_number)


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
    if not 0 < threshold < math.inf:  # NaN fails both; "above inf" could never fire
        raise ValueError(f"threshold must be a positive number, got {threshold!r}")
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


def latest_prices(warehouse: Warehouse, symbols: list[str]) -> dict[str, Price]:
    """Per symbol, the newer of its quote and its newest 1-minute bar's close. A bar is stamped
    at its start and its close is the price at its end, a minute later: that is the time a
    quote is compared with (a tie goes to the quote)."""
    prices = {
        s: Price(ts, close, MINUTE_BAR)
        for s, (ts, close) in latest_closes(warehouse, symbols).items()
    }
    for symbol, price in latest_quotes(warehouse, symbols).items():
        bar = prices.get(symbol)
        if bar is None or price.ts >= bar.ts + BAR_LENGTH:
            prices[symbol] = price
    return prices


def latest_quotes(warehouse: Warehouse, symbols: list[str]) -> dict[str, Price]:
    """The stored quote's (quote time, last) per symbol."""
    if not symbols:
        return {}
    quotes = tables.quotes
    query = sa.select(quotes.c.symbol, quotes.c.quote_ts, quotes.c.last).where(
        quotes.c.symbol.in_(symbols)
    )
    with warehouse.engine.connect() as conn:
        return {
            symbol: Price(as_utc(ts), float(last), QUOTE)
            for symbol, ts, last in conn.execute(query)
        }


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
        return {symbol: (as_utc(ts), float(close)) for symbol, ts, close in conn.execute(query)}


def as_utc(value: object) -> datetime:
    """A stored instant as an aware UTC datetime (SQLite hands back naive UTC)."""
    stamp = pd.Timestamp(value)
    return (
        stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    ).to_pydatetime()


def crossed(direction: str, threshold: float, price: float) -> bool:
    """At or beyond the threshold, on the side the rule watches."""
    return price >= threshold if direction == "above" else price <= threshold


def evaluate_alerts(warehouse: Warehouse) -> list[Trigger]:
    """Fire every armed rule whose symbol's latest price crossed it; re-arm repeating rules
    whose price is back on the near side. Returns the triggers this call claimed."""
    with warehouse.engine.connect() as conn:
        rules = conn.execute(
            sa.select(price_alerts).where(
                sa.or_(price_alerts.c.armed.is_(True), price_alerts.c.repeating.is_(True))
            )
        ).all()
    prices = latest_prices(warehouse, sorted({rule.symbol for rule in rules}))
    fired: list[Trigger] = []
    for rule in rules:
        latest = prices.get(rule.symbol)
        if latest is None:
            continue
        hit = crossed(rule.direction, rule.threshold, latest.price)
        if rule.armed and hit:
            trigger = Trigger(
                alert_id=rule.id,
                symbol=rule.symbol,
                direction=rule.direction,
                threshold=rule.threshold,
                price=latest.price,
                price_ts=latest.ts,
                source=latest.source,
                repeating=bool(rule.repeating),
                count=rule.trigger_count + 1,
                note=rule.note,
            )
            if _claim(warehouse, trigger):
                fired.append(trigger)
        elif not rule.armed and rule.repeating and not hit:
            _rearm(warehouse, rule.id)
    return fired


def _claim(warehouse: Warehouse, trigger: Trigger) -> bool:
    """Disarm the rule if it is still armed and still at the count read, and record the
    trigger, in one transaction. A reconnect that runs it again after its COMMIT went through
    finds the rule disarmed and claims nothing; the trigger recorded by that COMMIT is still
    delivered."""
    now = warehouse.instant(utc_now())
    claim = (
        sa.update(price_alerts)
        .where(
            price_alerts.c.id == trigger.alert_id,
            price_alerts.c.armed.is_(True),
            price_alerts.c.trigger_count == trigger.count - 1,
        )
        .values(
            armed=False,
            triggered_at=now,
            trigger_count=trigger.count,
            last_trigger_price=trigger.price,
        )
    )
    record = sa.insert(price_alert_triggers).values(
        {
            **trigger.as_row(),
            "price_ts": warehouse.instant(trigger.price_ts),
            "triggered_at": now,
            "attempts": 0,
        }
    )

    def claim_and_record(conn: sa.Connection) -> bool:
        if conn.execute(claim).rowcount != 1:
            return False
        conn.execute(record)
        return True

    return warehouse.run_transaction(claim_and_record)


def _rearm(warehouse: Warehouse, alert_id: int) -> None:
    warehouse.run_transaction(
        lambda conn: conn.execute(
            sa.update(price_alerts)
            .where(price_alerts.c.id == alert_id, price_alerts.c.repeating.is_(True))
            .values(armed=True)
        )
    )
