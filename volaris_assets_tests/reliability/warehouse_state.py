"""The warehouse as comparable data: every contract table, sorted by its key, without the
columns that record when a row was written (those differ between any two runs); and the
option-chain symbols that are not all-or-nothing (what an interrupted write would leave)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd
import sqlalchemy as sa

from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.tables import KEYS, metadata

# Columns stamped with the wall clock or the run, not derived from the data.
WRITE_TIME_COLUMNS = frozenset({"updated_at", "recorded_at", "added_on", "run_id", "duration_ms"})
DATA_TABLES = (
    "tickers",
    "price_bars",
    "option_contracts",
    "option_snapshots",
    "iv_metrics",
    "stock_premiums",
)


def table_state(warehouse: Warehouse, table: str) -> pd.DataFrame:
    """All rows of `table` sorted by its natural key, write-time columns dropped."""
    columns = [c.name for c in metadata.tables[table].columns if c.name not in WRITE_TIME_COLUMNS]
    query = sa.select(*(metadata.tables[table].c[c] for c in columns))
    frame = warehouse.read_frame(query)
    keys = [k for k in KEYS[table] if k in columns]
    return frame.sort_values(keys).reset_index(drop=True)


def warehouse_state(url: str, tables: Iterable[str] = DATA_TABLES) -> dict[str, pd.DataFrame]:
    warehouse = Warehouse(url)
    try:
        return {table: table_state(warehouse, table) for table in tables}
    finally:
        warehouse.dispose()


def assert_same_state(
    got: Mapping[str, pd.DataFrame], expected: Mapping[str, pd.DataFrame]
) -> None:
    """Row for row, value for value (floats exactly: both sides came from the same market)."""
    assert set(got) == set(expected)
    for table in expected:
        pd.testing.assert_frame_equal(got[table], expected[table], check_exact=True, obj=table)


def row_counts(url: str) -> dict[str, int]:
    """Rows per table of the whole contract, including the run-outcome tables."""
    warehouse = Warehouse(url)
    try:
        with warehouse.engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            return {
                name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for name, table in metadata.tables.items()
                if name in present
            }
    finally:
        warehouse.dispose()


# Per symbol: the rows its `ok` option_chains outcome says were written, and the rows stored.
_CHAIN_COUNTS = {
    "recorded": "SELECT symbol, max(rows_written) AS n FROM sync_stock_results "
    "WHERE asset = 'option_chains' AND status = 'ok' GROUP BY symbol",
    "snapshots": "SELECT symbol, count(*) AS n FROM option_snapshots GROUP BY symbol",
    "contracts": "SELECT symbol, count(*) AS n FROM option_contracts GROUP BY symbol",
}


def chain_counts(url: str) -> pd.DataFrame:
    """Per symbol (rows) the `_CHAIN_COUNTS` (columns); 0 where a symbol has none."""
    warehouse = Warehouse(url)
    try:
        counts = {
            name: warehouse.read_frame(query).set_index("symbol")["n"]
            for name, query in _CHAIN_COUNTS.items()
        }
    finally:
        warehouse.dispose()
    return pd.DataFrame(counts).fillna(0).astype(int).sort_index()


def partial_symbols(url: str) -> dict[str, dict[str, int]]:
    """The symbols whose chain is not whole: data without an `ok` outcome row, or an outcome
    row whose count the tables disagree with (the outcome commits with the data, so after any
    interruption each symbol has all three or none)."""
    counts = chain_counts(url)
    whole = (counts["recorded"] == counts["snapshots"]) & (
        counts["snapshots"] == counts["contracts"]
    )
    return {str(symbol): row.to_dict() for symbol, row in counts[~whole].iterrows()}


def state_differences(
    got: Mapping[str, pd.DataFrame], expected: Mapping[str, pd.DataFrame]
) -> dict[str, int]:
    """Per table, the rows only one side has (every compared column equal, floats exactly):
    `assert_same_state` as a count, for a report rather than a test."""
    differences = {}
    for table, frame in expected.items():
        merged = got[table].merge(frame, how="outer", indicator=True)
        differences[table] = int((merged["_merge"] != "both").sum())
    return differences
