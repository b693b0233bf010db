"""The warehouse as comparable data: every contract table, sorted by its key, without the
columns that record when a row was written (those differ between any two runs)."""

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
