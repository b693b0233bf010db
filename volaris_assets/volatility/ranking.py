"""IV rank and percentile of stored `iv_metrics` rows, against the end-of-day history before
each session; shared by the live asset and the history bootstrap, so that both rank alike."""

from __future__ import annotations

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets.quant.iv_metrics import RANK_WINDOW
from volaris_assets.volatility.metrics import rank_and_percentile
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now


def with_rank(
    conn: Connection,
    warehouse: Warehouse,
    symbol: str,
    frame: pd.DataFrame,
    target: sa.Table = tables.iv_metrics,
) -> pd.DataFrame:
    """Add IV rank/percentile, in session order, against the stored end-of-day history before
    each day; the result has the columns of `target`."""
    table = tables.iv_metrics
    first = frame["date"].min()
    history = np.array(
        [
            value if value is not None else np.nan
            for (value,) in conn.execute(
                sa.select(table.c.atm_iv_30d)
                .where(table.c.symbol == symbol, table.c.date < first)
                .order_by(table.c.date.desc())
                .limit(RANK_WINDOW - 1)
            )
        ][::-1],
        dtype=float,
    )
    out = frame.sort_values("date").reset_index(drop=True).copy()
    ranks, percentiles, depth = [], [], []
    for current in out.get("atm_iv_30d", pd.Series([None] * len(out))):
        current = None if current is None or pd.isna(current) else float(current)
        rank, percentile = rank_and_percentile(history, current)
        ranks.append(rank)
        percentiles.append(percentile)
        depth.append(int(min(np.isfinite(history).sum() + 1, RANK_WINDOW)))
        history = np.append(history, np.nan if current is None else current)
    out["iv_rank"], out["iv_percentile"], out["iv_history_days"] = ranks, percentiles, depth
    out["updated_at"] = utc_now()
    return out.reindex(columns=[c.name for c in target.columns])


def write_ranked(conn: Connection, warehouse: Warehouse, symbol: str, filled: pd.DataFrame) -> int:
    """Upsert `filled` (rows of `iv_metrics`) and re-rank the symbol's rows from the first of
    them on: a session written after later ones (a backfill, the bootstrap) changes the rank,
    percentile and history depth of every later session."""
    if filled.empty:
        return 0
    table = tables.iv_metrics
    first = filled["date"].min()
    stored = pd.DataFrame(
        conn.execute(sa.select(table).where(table.c.symbol == symbol, table.c.date >= first))
        .mappings()
        .all(),
        columns=[c.name for c in table.columns],
    )
    kept = stored[~stored["date"].isin(set(filled["date"]))]
    merged = pd.concat([kept, filled.reindex(columns=kept.columns)], ignore_index=True)
    return warehouse.upsert(conn, "iv_metrics", with_rank(conn, warehouse, symbol, merged))
