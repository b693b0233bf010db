"""The scan's own CPU a symbol: Schwab's chain parse, validation, the wheel pick and the
warehouse write (SQLite, or PostgreSQL with `--postgres`), without HTTP, this tree against a
git revision.

    python -m bench.bench_chain_cpu [--baseline-rev HEAD] [--symbols 200] [--pairs 5]
                                    [--postgres [URL]]

Why apart from `bench_scan`: at R = 100 the scan is bound by its one interpreter (the sandbox
takes a fifth of the other core or less, `sandbox_cpu_s`), and a whole scan's pace on a shared
2-core host varies by a third between runs of the same code, more than a change to the
per-symbol work moves it. Here that work runs alone, on the same payloads for both packages,
in pairs that alternate between them so that the host's drift falls on both.

Payloads: the scan's request (its puts near 30 DTE) for the first `--symbols` symbols of the
padded scan universe, answered by the sandbox in this process through the Schwab client, kept
as the client decoded them. Each package's probe runs in a fresh interpreter with the package
first on PYTHONPATH: it parses and writes every payload once to warm up, then `--repeats`
times, each payload in its own transaction as the scan's writer does; its best pass is the
figure. Reported: each package's best and median over the pairs, ms a symbol, and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pickle
import statistics
from pathlib import Path
from typing import Any
from unittest import mock

from bench import common
from bench.bench_scan import SESSION_CLOSE
from bench.bench_warehouse import DEFAULT_PG, ensure_database
from volaris_assets.providers import schwab
from volaris_assets.providers.base import ProviderError
from volaris_assets.sandbox.server import start_sandbox
from volaris_assets.scan.premiums import WheelSettings

_PROBE = """
import pickle, sys, tempfile, time, types
from datetime import datetime
from volaris_assets.providers import schwab
from volaris_assets.scan.assets import write_premiums
from volaris_assets.scan.premiums import WheelSettings
from volaris_assets.warehouse.store import Warehouse

payloads_path, repeats, close = sys.argv[1], int(sys.argv[2]), sys.argv[3]
payloads = pickle.loads(open(payloads_path, "rb").read())
as_of = datetime.fromisoformat(close)
session = types.SimpleNamespace(day=as_of.date(), close=as_of)
settings = WheelSettings()
url = sys.argv[4] or "sqlite:///" + tempfile.mkdtemp() + "/warehouse.db"
warehouse = Warehouse(url)
warehouse.create_tables()
with warehouse.engine.begin() as conn:  # the other package's rows: each starts empty
    for name in ("stock_premiums", "stock_premium_scans"):
        if name in warehouse.engine.dialect.get_table_names(conn):
            conn.exec_driver_sql(f"DELETE FROM {name}")

def one(payload, symbol):
    fetched = types.SimpleNamespace(
        frame=schwab.parse_chain(payload, symbol), provider="schwab", attempts=1
    )
    with warehouse.engine.begin() as conn:
        write_premiums(conn, warehouse, symbol, fetched, session, settings)

for payload, symbol in payloads:
    one(payload, symbol)
best = float("inf")
for _ in range(repeats):
    started = time.perf_counter()
    for payload, symbol in payloads:
        one(payload, symbol)
    best = min(best, time.perf_counter() - started)
print(1000 * best / len(payloads))
"""


def capture_payloads(count: int) -> list[tuple[Any, str]]:
    """The decoded `/chains` answers to the scan's request for `count` symbols, with the symbol
    each was asked for (the client's parser wrapped to keep what it is handed)."""
    kept: list[tuple[Any, str]] = []
    parse = schwab.parse_chain

    def keep(payload: Any, requested: str) -> Any:
        kept.append((payload, requested))
        return parse(payload, requested)

    async def ask(settings: dict[str, str]) -> None:
        client = schwab.create(settings)
        window = WheelSettings().request_window(SESSION_CLOSE.date())
        try:
            for symbol in common.universe(count):
                try:
                    await client.option_chain(symbol, SESSION_CLOSE, window)
                except ProviderError:
                    pass  # a padded symbol the sandbox does not list
        finally:
            await client.aclose()

    with (
        start_sandbox(as_of=SESSION_CLOSE) as sandbox,
        mock.patch.object(schwab, "parse_chain", keep),
    ):
        asyncio.run(ask(sandbox.settings()))
    return kept


def measure(package_root: Path, payloads: Path, repeats: int, database_url: str) -> float:
    """ms a symbol, the best of `repeats` passes, in a fresh interpreter importing
    `package_root`, writing to `database_url` (a fresh SQLite file when empty)."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "DAGSTER_DISABLE_TELEMETRY": "1"}
    args = [str(payloads), str(repeats), SESSION_CLOSE.isoformat(), database_url]
    return float(common.run_probe(_PROBE, args, env, package_root, "chain"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="HEAD")
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--postgres",
        nargs="?",
        const=DEFAULT_PG,
        default="",
        help=f"write to this PostgreSQL database instead of SQLite (default {DEFAULT_PG})",
    )
    args = parser.parse_args()
    if args.postgres:
        ensure_database(args.postgres)

    with common.workdir("chain-cpu") as work:
        payloads = capture_payloads(args.symbols)
        path = work / "payloads.pickle"
        path.write_bytes(pickle.dumps(payloads))
        baseline_root = common.package_at(args.baseline_rev, work)
        figures: dict[str, list[float]] = {"baseline": [], "current": []}
        for _ in range(args.pairs):
            figures["baseline"].append(measure(baseline_root, path, args.repeats, args.postgres))
            figures["current"].append(measure(common.ROOT, path, args.repeats, args.postgres))

    summary = {
        name: {"best_ms": round(min(runs), 3), "median_ms": round(statistics.median(runs), 3)}
        for name, runs in figures.items()
    }
    written_to = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"parse + validate + pick + {written_to} write, {len(payloads)} Schwab chains, ms a symbol"
    )
    for name, label in (("baseline", args.baseline_rev), ("current", "this tree")):
        runs = ", ".join(f"{ms:.2f}" for ms in figures[name])
        print(f"  {label}: best {summary[name]['best_ms']}, median {summary[name]['median_ms']}")
        print(f"    passes: {runs}")
    common.emit(
        {
            "bench": "chain_cpu",
            "symbols": len(payloads),
            "warehouse": written_to,
            "baseline_rev": args.baseline_rev,
            **summary,
            "best_ratio": round(summary["current"]["best_ms"] / summary["baseline"]["best_ms"], 3),
            "median_ratio": round(
                summary["current"]["median_ms"] / summary["baseline"]["median_ms"], 3
            ),
        }
    )


if __name__ == "__main__":
    main()
