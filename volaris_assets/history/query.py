"""One place to ask for option history: DuckDB over the cold Parquet files and the hot table.

`open_history()` returns a DuckDB connection with the view `option_history` (the columns of
`option_snapshots`, in the cold schema of `cold.SCHEMA`) over both tiers of the sessions asked
for. A symbol's snapshot in both tiers (a compaction that crashed before deleting, a window
fetched again after its session was compacted) is read from the hot table alone. DuckDB's
sqlite/postgres scanner extensions are downloaded on first use, which an offline or locked-down
host cannot do, so the hot rows are read through SQLAlchemy (the same engine every other reader
uses), restricted to the symbols and sessions asked for, and copied into a DuckDB table a chunk
at a time. The cold files are read with `read_parquet` over the
manifests' files: DuckDB pushes the symbol filter into the scan, and the row groups' statistics
skip the other symbols.

A cold file that is missing or unreadable is left out and named in `History.problems`: the
rest still answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING

import pandas as pd
import sqlalchemy as sa

from volaris_assets.history.cold import (
    COLUMN_DDL,
    COLUMNS,
    SNAPSHOT_KEY,
    ColdStore,
    insert_frame,
    literal,
    read_files,
)
from volaris_assets.history.compaction import day_bounds
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

if TYPE_CHECKING:
    import duckdb

VIEW = "option_history"
_SNAPS = tables.option_snapshots
_HOT_CHUNK_ROWS = 200_000


@dataclass
class History:
    """A DuckDB connection with the `option_history` view, and the cold files left out."""

    connection: duckdb.DuckDBPyConnection
    problems: list[str] = field(default_factory=list)
    cold_files: int = 0
    hot_rows: int = 0

    def sql(self, query: str, params: Sequence | None = None) -> pd.DataFrame:
        return self.connection.execute(query, params or []).df()

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def open_history(
    warehouse: Warehouse,
    store: ColdStore,
    *,
    symbols: Sequence[str] | None = None,
    first: date | None = None,
    last: date | None = None,
) -> History:
    """A DuckDB connection whose view `option_history` holds every snapshot row of `symbols`
    (all when None) in the sessions `first`..`last` (unbounded when None), from both tiers.

    Use it as a context manager; query with `History.sql` or the DuckDB connection itself.
    """
    connection = store.connect()
    history = History(connection)
    paths = []
    for manifest in store.manifests(first, last):
        problem = store.verify(manifest, con=connection)
        if problem:
            history.problems.append(problem)
        else:
            paths.append(manifest.path)
    connection.execute(f"CREATE TEMP TABLE hot_rows ({COLUMN_DDL})")
    history.hot_rows = _load_hot_rows(connection, warehouse, symbols, first, last)
    history.cold_files = len(paths)
    if paths:
        cold = read_files([store.uri(p) for p in paths])
        if symbols is not None:
            cold += f" WHERE symbol IN ({', '.join(map(literal, symbols)) or 'NULL'})"
    else:
        cold = "SELECT * FROM hot_rows WHERE false"
    connection.execute(f"CREATE TEMP VIEW cold_rows AS {cold}")
    connection.execute(
        f"CREATE TEMP VIEW {VIEW} AS SELECT * FROM hot_rows UNION ALL "
        f"SELECT cold_rows.* FROM cold_rows ANTI JOIN hot_rows USING ({SNAPSHOT_KEY})"
    )
    return history


def _load_hot_rows(
    connection: duckdb.DuckDBPyConnection,
    warehouse: Warehouse,
    symbols: Sequence[str] | None,
    first: date | None,
    last: date | None,
) -> int:
    """The hot table's rows of `symbols` in the sessions asked for, copied into `hot_rows` in
    the cold schema, `_HOT_CHUNK_ROWS` at a time; returns how many."""
    conditions = []
    if symbols is not None:
        conditions.append(_SNAPS.c.symbol.in_(list(symbols)))
    if first is not None:
        conditions.append(_SNAPS.c.snapshot_ts >= warehouse.instant(day_bounds(first)[0]))
    if last is not None:
        conditions.append(_SNAPS.c.snapshot_ts < warehouse.instant(day_bounds(last)[1]))
    query = sa.select(*[_SNAPS.c[name] for name in COLUMNS]).where(*conditions)
    rows = 0
    with warehouse.engine.connect() as conn:
        result = conn.execution_options(stream_results=True).execute(query)
        while chunk := result.fetchmany(_HOT_CHUNK_ROWS):
            insert_frame(connection, "hot_rows", pd.DataFrame(chunk, columns=COLUMNS))
            rows += len(chunk)
    return rows


# The ATM IV of the expiration nearest 30 days, per snapshot: the mean of the call's and the
# put's IV at the strike nearest the underlying. (The constant-maturity 30-day IV that IV rank
# is built on is `iv_metrics.atm_iv_30d`, one row per session.)
_ATM_IV_30D = f"""
WITH rows AS (
    SELECT snapshot_ts, implied_volatility AS iv, underlying_price AS spot,
           abs(dte - 30) AS days_off, abs(strike - underlying_price) AS strike_off
    FROM {VIEW}
    WHERE symbol = ? AND implied_volatility IS NOT NULL
), expiry AS (
    SELECT snapshot_ts, min(days_off) AS days_off FROM rows GROUP BY snapshot_ts
), nearest AS (
    SELECT rows.* FROM rows JOIN expiry USING (snapshot_ts, days_off)
), atm AS (
    SELECT snapshot_ts, min(strike_off) AS strike_off FROM nearest GROUP BY snapshot_ts
)
SELECT snapshot_ts, avg(iv) AS atm_iv_30d, any_value(spot) AS underlying_price
FROM nearest JOIN atm USING (snapshot_ts, strike_off)
GROUP BY snapshot_ts ORDER BY snapshot_ts
"""


def atm_iv_series(history: History, symbol: str) -> pd.DataFrame:
    """`symbol`'s ATM IV of the expiration nearest 30 days at every snapshot in `history`:
    snapshot_ts, atm_iv_30d, underlying_price."""
    return history.sql(_ATM_IV_30D, [symbol])
