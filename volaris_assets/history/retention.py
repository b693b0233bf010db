"""Retention of the operational tables: what only matters for a while is deleted after it.

`sync_stock_results` (one row per symbol per run, ~40,000 a day) and `row_rejections` are
for following runs and investigating failures; intraday bars (`1m`, `5m`) feed the session's
alerts and charts. Daily bars, IV metrics and the option history are kept: they are the history
the bot answers from. Each table reports how many rows went.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

INTRADAY_TIMEFRAMES = ("1m", "5m")


@dataclass(frozen=True)
class Windows:
    """Days each operational table keeps."""

    sync_stock_results: int = 30
    row_rejections: int = 30
    intraday_bars: int = 30


def _targets(windows: Windows) -> dict[str, tuple[sa.Table, sa.Column, int, list]]:
    bars = tables.price_bars
    return {
        "sync_stock_results": (
            tables.sync_stock_results,
            tables.sync_stock_results.c.recorded_at,
            windows.sync_stock_results,
            [],
        ),
        "row_rejections": (
            tables.row_rejections,
            tables.row_rejections.c.recorded_at,
            windows.row_rejections,
            [],
        ),
        "intraday_bars": (
            bars,
            bars.c.ts,
            windows.intraday_bars,
            [bars.c.timeframe.in_(INTRADAY_TIMEFRAMES)],
        ),
    }


def apply_retention(warehouse: Warehouse, windows: Windows, now: datetime) -> dict[str, int]:
    """Delete rows older than each window; returns rows removed per table (by the names of
    `Windows`' fields)."""
    removed = {}
    for name, (table, stamp, days, extra) in _targets(windows).items():
        cutoff = warehouse.instant(now - timedelta(days=days))
        removed[name] = _delete_before(warehouse, table, stamp, cutoff, extra)
    return removed


def _delete_before(warehouse: Warehouse, table: sa.Table, stamp, cutoff, extra) -> int:
    """One DELETE in one transaction: a re-run after a failure deletes what is left."""
    statement = sa.delete(table).where(stamp < cutoff, *extra)
    return warehouse.run_transaction(lambda conn: conn.execute(statement).rowcount)
