"""Storage tiers: a session of snapshots in PostgreSQL, compacted to Parquet, a year queried.

    python -m bench.bench_storage [--symbols 40] [--snapshots 26] [--sessions 252] [--pg-url URL]

1. A full session of the simulated market (26 snapshots, 15 minutes apart) for `--symbols`
   symbols, written to PostgreSQL's `option_snapshots` (with its indexes) as `option_chains`
   writes it; `hot_bytes_per_row` is `pg_total_relation_size` over the rows, after VACUUM.
2. `compact_session` moves it to Parquet: `compaction_s`, `cold_bytes_per_row`, and `rows_lost`
   (rows written minus distinct keys readable over both tiers through `open_history`).
   The same rows are also written without the four greeks, and with float64, to measure what
   deriving greeks and narrowing floats save.
3. A year of files (`--sessions`, each the measured session shifted to an earlier date) is
   queried for one symbol's ATM 30-day IV at every snapshot (`history_query_s`), against a
   baseline in the same run: the same files read whole with DuckDB into pandas, one at a time,
   and filtered to the symbol there (no pruning, no pushdown).
4. `year_gb_projected`: 252 sessions of the default 500-symbol universe at the default cadence,
   from the measured contracts per symbol and bytes per row (one session hot, the rest cold);
   `hot_gb_steady` is the hot table at the default window (one session).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench import common
from bench.bench_warehouse import ensure_database
from volaris_assets import calendar
from volaris_assets.history import cold
from volaris_assets.history.compaction import compact_session
from volaris_assets.history.query import atm_iv_series, open_history
from volaris_assets.providers.base import CHAIN_COLUMNS
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.tables import metadata

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/volaris_bench"
SESSION = date(2026, 11, 24)
DEFAULT_UNIVERSE = 500
GREEKS = ["delta", "gamma", "theta", "vega"]
GB = 1e9


def load_session(warehouse: Warehouse, symbols: list[str], snapshots: int) -> int:
    """Write `snapshots` snapshots of `symbols` as `option_chains` does: one upsert per symbol."""
    market = SimulatedMarket()
    columns = [c for c in CHAIN_COLUMNS if c != "quote_ts"]
    rows = 0
    for instant in calendar.snapshot_times(SESSION)[:snapshots]:
        for symbol in symbols:
            chain = market.option_chain(symbol, instant)[columns].assign(snapshot_ts=instant)
            rows += warehouse.run_transaction(
                lambda conn, c=chain: warehouse.upsert(conn, "option_snapshots", c)
            )
    return rows


def hot_size(warehouse: Warehouse) -> tuple[int, int]:
    with warehouse.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE option_snapshots")
        total = conn.exec_driver_sql("SELECT pg_total_relation_size('option_snapshots')").scalar()
        heap = conn.exec_driver_sql("SELECT pg_relation_size('option_snapshots')").scalar()
    return int(total), int(heap)


def variant_bytes(store: cold.ColdStore, source: str, path: Path, columns: list[str]) -> int:
    """Bytes of the file at `source` as `columns` (SQL expressions), written like the cold tier
    (same codec, row groups, order)."""
    with store.connect() as con:
        store.write(con, f"SELECT {', '.join(columns)} FROM {store.parquet(source)}", str(path))
    return path.stat().st_size


def make_year(store: cold.ColdStore, source: str, sessions: int) -> list[date]:
    """`sessions` files ending at SESSION: its file shifted to each earlier session's date."""
    days = [s.day for s in calendar.sessions_between(SESSION - timedelta(days=400), SESSION)]
    days = days[-sessions:]
    base = calendar.session(SESSION).open
    with store.connect() as con:
        (rows,) = con.execute(f"SELECT count(*) FROM {store.parquet(source)}").fetchone()
        for day in days:
            shift = (calendar.session(day).open - base) // timedelta(microseconds=1)
            shifted = (
                f"SELECT * REPLACE (snapshot_ts + to_microseconds({shift}) AS snapshot_ts, "
                f"expiration + {(day - SESSION).days} AS expiration) FROM {store.parquet(source)}"
            )
            path = store.file_path(day)
            store.write(con, shifted, path)
            store.write_manifest(
                cold.Manifest(day.isoformat(), path, rows, "0" * 16, store.size(path), 0)
            )
    return days


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--snapshots", type=int, default=26)
    parser.add_argument("--sessions", type=int, default=252)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    args = parser.parse_args()
    symbols = common.universe(args.symbols)
    ensure_database(args.pg_url)
    warehouse = Warehouse(args.pg_url)
    with warehouse.transaction() as conn:
        metadata.tables["option_snapshots"].drop(conn, checkfirst=True)
    warehouse.create_tables()
    work = Path(tempfile.mkdtemp(prefix="volaris-bench-storage-"))
    try:
        started = time.perf_counter()
        rows_in = load_session(warehouse, symbols, args.snapshots)
        load_s = time.perf_counter() - started
        hot_total, hot_heap = hot_size(warehouse)
        print(f"loaded {rows_in} rows in {load_s:.0f} s", file=sys.stderr, flush=True)

        store = cold.ColdStore(str(work / "session"))
        done = compact_session(warehouse, store, SESSION)
        with open_history(warehouse, store) as history:
            readable = int(
                history.sql(
                    "SELECT count(DISTINCT (occ_symbol, snapshot_ts)) AS n FROM option_history"
                )["n"].iloc[0]
            )
        session_file = store.file_path(SESSION)
        names = {name: cold.quoted(name) for name in cold.COLUMNS}
        no_greeks = variant_bytes(
            store,
            session_file,
            work / "no_greeks.parquet",
            [q for name, q in names.items() if name not in GREEKS],
        )
        float64 = variant_bytes(
            store,
            session_file,
            work / "float64.parquet",
            [
                f"CAST({names[name]} AS DOUBLE) AS {names[name]}"
                if kind == "FLOAT"
                else names[name]
                for name, kind in cold.SCHEMA
            ],
        )

        year = cold.ColdStore(str(work / "year"))
        days = make_year(year, session_file, args.sessions)
        print(f"compacted in {done.seconds:.1f} s; year written", file=sys.stderr, flush=True)
        symbol = symbols[len(symbols) // 2]
        started = time.perf_counter()
        with open_history(warehouse, year, symbols=[symbol], first=days[0], last=days[-1]) as h:
            series = atm_iv_series(h, symbol)
        query_s = time.perf_counter() - started
        started = time.perf_counter()
        whole = 0
        with year.connect() as con:
            for day in days:  # one file at a time: a year whole would not fit in memory
                every = con.execute(f"SELECT * FROM {year.parquet(year.file_path(day))}").df()
                whole += int((every["symbol"] == symbol).sum())
        baseline_s = time.perf_counter() - started
    finally:
        warehouse.dispose()
        shutil.rmtree(work, ignore_errors=True)
    per_symbol = rows_in / args.snapshots / len(symbols)
    session_rows = per_symbol * DEFAULT_UNIVERSE * 26
    cold_bpr = done.bytes / done.rows
    hot_bpr = hot_total / rows_in
    common.emit(
        {
            "bench": "storage",
            "symbols": len(symbols),
            "snapshots": args.snapshots,
            "rows_in": rows_in,
            "load_s": round(load_s, 1),
            "hot_bytes_per_row": round(hot_bpr, 1),
            "hot_heap_bytes_per_row": round(hot_heap / rows_in, 1),
            "cold_bytes_per_row": round(cold_bpr, 2),
            "cold_bytes_per_row_without_greeks": round(no_greeks / done.rows, 2),
            "cold_bytes_per_row_float64": round(float64 / done.rows, 2),
            "hot_to_cold_ratio": round(hot_bpr / cold_bpr, 1),
            "compaction_s": round(done.seconds, 2),
            "rows_lost": rows_in - readable,
            "history_sessions": len(days),
            "history_rows_read": whole,
            "history_points": len(series),
            "history_query_s": round(query_s, 3),
            "history_baseline_s": round(baseline_s, 3),
            "history_speedup_vs_baseline": round(baseline_s / query_s, 1),
            "contracts_per_symbol": round(per_symbol, 1),
            "hot_gb_steady": round(session_rows * hot_bpr / GB, 2),
            "year_gb_projected": round(
                (session_rows * hot_bpr + 251 * session_rows * cold_bpr) / GB, 2
            ),
        }
    )


if __name__ == "__main__":
    main()
