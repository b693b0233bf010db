"""Warehouse ingest: option rows/s through `Warehouse.upsert` against a raw COPY, same rows.

    python -m bench.bench_warehouse [--quick] [--symbols 500] [--pg-url URL]

Rows are real option-chain snapshots from the simulated market (~400 contracts per symbol,
written to `option_snapshots`, key (occ_symbol, snapshot_ts), plus its secondary index).
PostgreSQL (a dedicated database `volaris_bench`, created if missing, fsync on as configured):
1. inserts: `Warehouse.upsert` into empty tables, both as the pipeline calls it (one call and
   one commit per symbol) and as one bulk call (every row, one transaction);
2. re-upsert: the same rows again, so every row is an update;
3. baseline: the same DataFrame serialised to CSV and COPYed into a bare table (same columns,
   no key, no index), in one transaction, and per symbol (one COPY and commit each, compared
   with the per-symbol upserts): the floor any upsert from a DataFrame pays. It uses the
   project's own serialiser (`warehouse.upsert.csv_buffer`, a little faster than plain
   `DataFrame.to_csv`), so the ratio measures what the upsert adds in the database.
   COPY of a CSV built beforehand (the database's share alone) is printed beside it.
SQLite (a temp file) gets the same inserts and re-upsert, for its figure.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from bench import common
from volaris_assets.providers.base import CHAIN_COLUMNS
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.tables import metadata
from volaris_assets.warehouse.upsert import csv_buffer

SNAPSHOT = datetime(2026, 11, 24, 20, 45, tzinfo=UTC)
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/volaris_bench"
TABLE = "option_snapshots"
BARE = "bench_bare_option_snapshots"


def chains(symbols: list[str]) -> list[pd.DataFrame]:
    """One snapshot frame per symbol, with the columns `write_chain` sends."""
    market = SimulatedMarket()
    columns = [c for c in CHAIN_COLUMNS if c != "quote_ts"]
    return [market.option_chain(s, SNAPSHOT)[columns].assign(snapshot_ts=SNAPSHOT) for s in symbols]


def ensure_database(url: str) -> None:
    """Create the benchmark's database on the server if it is missing."""
    target = sa.make_url(Warehouse(url).url)
    admin = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": target.database}
        ).scalar()
        if not exists:
            conn.exec_driver_sql(f'CREATE DATABASE "{target.database}"')
    admin.dispose()


def reset(warehouse: Warehouse) -> None:
    with warehouse.transaction() as conn:
        metadata.tables[TABLE].drop(conn, checkfirst=True)
    warehouse.create_tables()
    with warehouse.transaction() as conn:
        if warehouse.dialect == "postgresql":
            conn.exec_driver_sql(f"DROP TABLE IF EXISTS {BARE}")
            conn.exec_driver_sql(
                f"CREATE TABLE {BARE} (LIKE {TABLE} INCLUDING DEFAULTS EXCLUDING CONSTRAINTS "
                "EXCLUDING INDEXES)"
            )


def per_symbol(warehouse: Warehouse, frames: list[pd.DataFrame]) -> None:
    for frame in frames:
        with warehouse.transaction() as conn:
            warehouse.upsert(conn, TABLE, frame)


def bulk(warehouse: Warehouse, frame: pd.DataFrame) -> None:
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, TABLE, frame)


def raw_copy(warehouse: Warehouse, frame: pd.DataFrame, buffer: io.StringIO | None = None) -> None:
    """The floor: the frame as CSV straight into COPY, no staging, no key to check."""
    buffer = buffer or csv_buffer(frame, metadata.tables[TABLE])
    columns = ", ".join(f'"{c}"' for c in frame.columns)
    with warehouse.transaction() as conn:
        cursor = conn.connection.dbapi_connection.cursor()
        cursor.copy_expert(f"COPY {BARE} ({columns}) FROM STDIN WITH (FORMAT csv)", buffer)
        cursor.close()


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def count(warehouse: Warehouse, table: str) -> int:
    return int(warehouse.read_frame(f"SELECT count(*) AS n FROM {table}")["n"][0])


def measure(warehouse: Warehouse, frames: list[pd.DataFrame], whole: pd.DataFrame) -> dict:
    """Seconds for each path on `warehouse`, each from the same starting state."""
    rows, seconds = len(whole), {}
    reset(warehouse)
    seconds["insert_per_symbol"] = timed(lambda: per_symbol(warehouse, frames))
    seconds["reupsert_per_symbol"] = timed(lambda: per_symbol(warehouse, frames))
    assert count(warehouse, TABLE) == rows
    reset(warehouse)
    seconds["insert_bulk"] = timed(lambda: bulk(warehouse, whole))
    seconds["reupsert_bulk"] = timed(lambda: bulk(warehouse, whole))
    assert count(warehouse, TABLE) == rows
    if warehouse.dialect == "postgresql":
        seconds["raw_copy"] = timed(lambda: raw_copy(warehouse, whole))
        assert count(warehouse, BARE) == rows
        seconds["raw_copy_per_symbol"] = timed(
            lambda: [raw_copy(warehouse, frame) for frame in frames]
        )
        prebuilt = csv_buffer(whole, metadata.tables[TABLE])
        seconds["raw_copy_prebuilt_csv"] = timed(lambda: raw_copy(warehouse, whole, prebuilt))
        with warehouse.transaction() as conn:
            conn.exec_driver_sql(f"DROP TABLE {BARE}")
    return {k: round(rows / v) for k, v in seconds.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 symbols (~40k rows)")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    args = parser.parse_args()
    symbols = common.universe(100 if args.quick else args.symbols)
    frames = chains(symbols)
    whole = pd.concat(frames, ignore_index=True)
    print(
        f"{len(whole):,} option rows ({len(symbols)} symbols, {len(whole) // len(symbols)}/symbol)"
    )

    ensure_database(args.pg_url)
    pg = Warehouse(args.pg_url)
    postgres = measure(pg, frames, whole)
    reset(pg)
    pg.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        lite = Warehouse(f"sqlite:///{Path(tmp) / 'bench.db'}")
        sqlite = measure(lite, frames, whole)
        lite.dispose()

    ratios = {
        k: round(v / postgres["raw_copy_per_symbol" if "per_symbol" in k else "raw_copy"], 3)
        for k, v in postgres.items()
        if "copy" not in k
    }
    print(f"PostgreSQL rows/s: {postgres}")
    print(
        f"  / raw COPY of the same batches (bulk {postgres['raw_copy']:,}, per symbol "
        f"{postgres['raw_copy_per_symbol']:,} rows/s): {ratios}  (goals: insert >= 0.6, "
        "re-upsert >= 0.4)"
    )
    print(f"SQLite rows/s: {sqlite}")
    common.emit(
        {
            "benchmark": "warehouse",
            "quick": args.quick,
            "rows": len(whole),
            "postgres_rows_per_s": postgres,
            "postgres_over_raw_copy": ratios,
            "sqlite_rows_per_s": sqlite,
            "goal_insert_over_copy": 0.6,
            "goal_reupsert_over_copy": 0.4,
        }
    )


if __name__ == "__main__":
    main()
