"""What a backfill range run says about each of its sessions.

A run over a range of sessions (a backfill's `BackfillPolicy`) returns one result, and Dagster
stamps that one result on every partition of the range: there is no public way to give each
partition its own metadata in a ranged run (dagster-io/dagster#18123). Left alone, every session
of a three-session backfill claims the range's `rows_written`. So a range run's metadata says
that it is one (`partition_range`, `metadata_scope`), and carries each session's own row count,
read back from the warehouse after the write, so the partition a user opens shows its own
figure among the others. The same goes for the checks a range run evaluates.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.warehouse.store import Warehouse

# Up to this many sessions each get their own entry; a longer range (a years-deep backfill, whose
# metadata Dagster copies onto every partition) gets a summary and its empty sessions instead.
MAX_LISTED_SESSIONS = 62
SYMBOLS_PER_QUERY = 500


@dataclass(frozen=True)
class SessionRows:
    """Which rows of a table are an asset's, and the time column that dates them."""

    table: sa.Table
    column: sa.Column
    where: sa.ColumnElement[bool] | None = None

    def count(
        self, wh: Warehouse, symbols: Sequence[str], sessions: Sequence[calendar.Session]
    ) -> dict[date, int]:
        """Rows stored per session for `symbols`, bucketed by the UTC date of the column (a
        session's hours fall on one UTC date; a date column is its own bucket). Filtering by
        symbol keeps the query on the table's primary key."""
        first, last = sessions[0].day, sessions[-1].day
        if isinstance(self.column.type, sa.Date):
            in_range = self.column.between(first, last)
        else:
            low = datetime.combine(first, time(0), tzinfo=calendar.UTC)
            high = datetime.combine(last + timedelta(days=1), time(0), tzinfo=calendar.UTC)
            in_range = (self.column >= wh.instant(low)) & (self.column < wh.instant(high))
        counts: Counter[date] = Counter()
        for start in range(0, len(symbols), SYMBOLS_PER_QUERY):
            chunk = list(symbols[start : start + SYMBOLS_PER_QUERY])
            query = (
                sa.select(self.column, sa.func.count().label("rows"))
                .where(self.table.c.symbol.in_(chunk), in_range)
                .group_by(self.column)
            )
            if self.where is not None:
                query = query.where(self.where)
            for value, rows in wh.read_frame(query).itertuples(index=False):
                counts[pd.Timestamp(value).date()] += int(rows)
        return {s.day: counts.get(s.day, 0) for s in sessions}


def range_metadata(
    context: dg.AssetExecutionContext,
    wh: Warehouse,
    rows: SessionRows,
    symbols: Sequence[str],
    sessions: Sequence[calendar.Session],
) -> dict:
    """Metadata that tells a range run's totals from each session's own rows; nothing for a
    run of one session, whose totals are its own."""
    if len(sessions) < 2:
        return {}
    keys = context.partition_key_range
    per_session = rows.count(wh, symbols, sessions)
    return {
        "partition_range": dg.MetadataValue.text(f"{keys.start}..{keys.end}"),
        "metadata_scope": dg.MetadataValue.text(
            f"one run wrote these {len(sessions)} sessions: the counts above are their "
            "totals; each session's own rows are in rows_by_session (Dagster stamps a range "
            "run's one result on every partition of it)"
        ),
        "rows_by_session": dg.MetadataValue.json(listed_by_session(per_session)),
    }


def with_range(
    context: dg.AssetCheckExecutionContext, result: dg.AssetCheckResult
) -> dg.AssetCheckResult:
    """`result`, saying which range it judged when a range run evaluated it once for all of its
    sessions (Dagster records that one evaluation for the whole range)."""
    keys = context.partition_key_range
    if keys.start == keys.end:
        return result
    return dg.AssetCheckResult(
        passed=result.passed,
        asset_key=result.asset_key,
        check_name=result.check_name,
        severity=result.severity,
        description=result.description,
        metadata={
            **result.metadata,
            "partition_range": dg.MetadataValue.text(f"{keys.start}..{keys.end}"),
            "metadata_scope": dg.MetadataValue.text(
                "evaluated once over the whole range: a failure may lie in any of its sessions"
            ),
        },
    )


def listed_by_session(per_session: Mapping[date, int]) -> dict:
    """Each session's rows, or for a range too long to list (its metadata is copied onto
    every partition) a summary and the sessions with no rows: the gaps a user looks for."""
    if len(per_session) <= MAX_LISTED_SESSIONS:
        return {day.isoformat(): rows for day, rows in per_session.items()}
    rows = list(per_session.values())
    empty = [day.isoformat() for day, n in per_session.items() if n == 0]
    return {
        "sessions": len(rows),
        "min": min(rows),
        "median": statistics.median(rows),
        "max": max(rows),
        "empty_sessions": len(empty),
        "first_empty_sessions": empty[:MAX_LISTED_SESSIONS],
    }
