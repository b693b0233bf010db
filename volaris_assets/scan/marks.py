"""`stock_premium_scans`: the session each symbol's `stock_premiums` rows reflect.

A scan that finds no candidate for a symbol leaves no premium row to carry its date, so the
mark is what tells a later scan from an earlier one (a backfill) for every symbol. Marking is
one conditional upsert per symbol, made first in the symbol's transaction: it takes the mark
only when no later session's scan holds it, and its row count says whether the scan's rows may
replace the stored ones. One prepared statement, because the scan's per-symbol work is what
bounds it at high request rates (a SELECT and then `Warehouse.upsert` cost that work 17%,
`bench_chain_cpu`).
"""

from __future__ import annotations

import functools
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

_MARKS = tables.stock_premium_scans
_PREMIUMS = tables.stock_premiums
_DIALECT_INSERT = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
_COLUMNS = ("symbol", "scan_date", "candidates", "provider", "updated_at")


def mark_scan(
    conn: Connection,
    warehouse: Warehouse,
    symbol: str,
    day: date,
    candidates: int,
    provider: str,
    now: datetime,
) -> bool:
    """Mark `symbol` as scanned as of `day` unless a later session's scan is marked; whether
    it was (an equal day is a re-run, which replaces its own rows)."""
    values = {
        "symbol": symbol,
        "scan_date": day,
        "candidates": candidates,
        "provider": provider,
        "updated_at": warehouse.instant(now),
    }
    return conn.execute(_mark_statement(warehouse.dialect), values).rowcount == 1


@functools.cache
def _mark_statement(dialect: str) -> sa.Executable:
    """The conditional upsert, built once per dialect: building it per symbol was most of
    what marking cost."""
    insert = _DIALECT_INSERT[dialect](_MARKS).values(
        {name: sa.bindparam(name) for name in _COLUMNS}
    )
    return insert.on_conflict_do_update(
        index_elements=[_MARKS.c.symbol],
        set_={name: insert.excluded[name] for name in _COLUMNS[1:]},
        where=_MARKS.c.scan_date <= insert.excluded.scan_date,
    )


def mark_earlier_scans(warehouse: Warehouse) -> None:
    """Mark the symbols whose premium rows a release before the marks wrote (once a run,
    one statement; none after the first run of this release)."""
    unmarked = sa.select(_MARKS.c.symbol).where(_MARKS.c.symbol == _PREMIUMS.c.symbol)
    earlier = (
        sa.select(
            _PREMIUMS.c.symbol,
            sa.func.max(_PREMIUMS.c.scan_date),
            sa.func.count(),
            sa.func.max(_PREMIUMS.c.provider),
            sa.func.max(_PREMIUMS.c.updated_at),
        )
        .where(~sa.exists(unmarked))
        .group_by(_PREMIUMS.c.symbol)
    )
    warehouse.run_transaction(
        lambda conn: conn.execute(sa.insert(_MARKS).from_select(list(_COLUMNS), earlier))
    )
