"""Price crosses injected into a day replay, and how long each took to reach Discord.

A cross is made, not waited for: at an injection the sandbox's clock is about to move from the
last minute the warehouse has seen to now. Among the largest names, one whose price now is
beyond everything it traded at in the last `LOOKBACK_MINUTES` gets a one-shot alert rule halfway
between the two, so that no recent quote or 1-minute close in the warehouse (a symbol's latest
price is at most a few minutes old) is on the far side of it; then the sandbox's clock moves and
the new price is served. The latency is from that moment to the
alert's arrival at the webhook: the quotes schedule's wait for its next tick, the quotes run
(and whatever run holds the box's only run slot before it), and the alert sensor's interval.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from volaris_assets.alerts.rules import add_price_alert
from volaris_assets.sandbox.server import Sandbox
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.webhook_receiver import WebhookReceiver

CANDIDATES = (
    *("SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "TSLA", "AVGO"),
    *("JPM", "V", "MA", "UNH", "XOM", "LLY", "JNJ", "PG", "HD", "COST", "ABBV", "MRK", "PEP"),
    *("KO", "WMT", "BAC", "CVX", "ORCL", "CRM", "AMD", "NFLX", "ADBE", "INTC", "CSCO", "DIS"),
)
LOOKBACK_MINUTES = 10
# A move smaller than this is within a quote's rounding: not a cross anyone would set.
MIN_MOVE = 0.02


@dataclass(frozen=True)
class Cross:
    symbol: str
    direction: str
    threshold: float
    injected_at: float  # epoch s: when the sandbox began serving the crossed price

    @property
    def title(self) -> str:
        return f"Price alert: {self.symbol} {self.direction} {self.threshold:g}"


def inject(sandbox: Sandbox, warehouse_url: str, now: datetime, used: set[str]) -> Cross | None:
    """Add a rule that the move from the sandbox's clock to `now` crosses, then move the clock;
    None (the clock moved all the same) when no unused candidate moved past its recent range."""
    simulated = sandbox.market.simulated
    before = sandbox.market.as_of
    found = None
    for symbol in CANDIDATES:
        if symbol in used:
            continue
        seen = [
            simulated.quote(symbol, before - timedelta(minutes=m)).last
            for m in range(LOOKBACK_MINUTES)
        ]
        price = simulated.quote(symbol, now).last
        if price > max(seen) + MIN_MOVE:
            found = (symbol, "above", round((price + max(seen)) / 2, 2))
        elif price < min(seen) - MIN_MOVE:
            found = (symbol, "below", round((price + min(seen)) / 2, 2))
        if found:
            break
    if found is None:
        sandbox.set_as_of(now)
        return None
    symbol, direction, threshold = found
    warehouse = Warehouse(warehouse_url)
    try:
        add_price_alert(warehouse, symbol, direction, threshold, note="bench_day injected cross")
    finally:
        warehouse.dispose()
    sandbox.set_as_of(now)
    used.add(symbol)
    return Cross(symbol, direction, threshold, time.time())


def latencies(crosses: list[Cross], receiver: WebhookReceiver) -> list[float | None]:
    """Seconds from each injection to its alert's arrival; None for one never alerted."""
    arrived: dict[str, float] = {}
    for request in receiver.requests:
        payload = request.payload or {}
        for embed in payload.get("embeds", []):
            arrived.setdefault(embed.get("title", ""), request.received_at)
    return [
        round(arrived[c.title] - c.injected_at, 1) if c.title in arrived else None for c in crosses
    ]
