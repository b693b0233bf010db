"""Run every benchmark, print one table, write bench/out/results.json and the plots.

    python -m bench.run_all [--quick] [--only scan,memory,...]

Each benchmark runs as its own process (`python -m bench.<module>`), so none inherits
another's imports or memory; each prints its own figures and ends with a JSON line, collected
here. `--quick` runs the ~1-minute version of each. Plots: bench/out/summary.png here, and the
memory benchmark's RSS-over-time plot (bench/out/rss_benchmark2.png, also committed as
docs/bench/rss_benchmark2.png by a full run).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

from bench import common

# name -> (module, extra arguments for --quick, or None when the module takes --quick)
BENCHMARKS: dict[str, tuple[str, list[str] | None]] = {
    "scan": ("bench.bench_scan", None),
    "memory": ("bench.bench_memory", None),
    "footprint": ("bench.bench_footprint", None),
    "implied_vol": ("bench.bench_implied_vol", ["--n", "200000", "--vollib-sample", "2000"]),
    "warehouse": ("bench.bench_warehouse", None),
    "backfill": ("bench.bench_backfill", None),
    "soak": ("bench.bench_soak", None),
    "big_body": ("bench.bench_big_body", []),
    "budget": ("bench.bench_budget", None),
}


def run(name: str, quick: bool) -> tuple[dict, str]:
    """Run one benchmark; its JSON record and the command line that produced it."""
    module, quick_args = BENCHMARKS[name]
    args = (["--quick"] if quick_args is None else quick_args) if quick else []
    command = [common.PYTHON, "-m", module, *args]
    print(f"\n=== {name}: {common.shown(command)}", flush=True)
    started = time.perf_counter()
    process = subprocess.run(
        command, cwd=common.ROOT, stdout=subprocess.PIPE, text=True, check=False
    )
    print(process.stdout, end="", flush=True)
    if process.returncode != 0:
        raise SystemExit(f"{name} failed with exit code {process.returncode}")
    record = json.loads(process.stdout.strip().splitlines()[-1])
    record["elapsed_s"] = round(time.perf_counter() - started, 1)
    return record, f"python -m {module}{' ' + ' '.join(args) if args else ''}"


def _scan(r: dict) -> tuple[str, str]:
    parts = [
        f"R = {run['rate_limit_per_s']}/s: {run['symbols_per_s']:.1f} symbols/s = "
        f"{run['symbols_per_s_over_r']:.2f} R (budget used {run['requests_per_s_over_r']:.2f} R; "
        f"first 95% of symbols at {run['steady_symbols_per_s_over_r']:.2f} R), "
        f"success {run['success_rate']:.2%} of {run['symbols']:,}, {run['fan_out_s']:.0f} s, "
        f"{run['run_cpu_s'] / run['symbols'] * 1000:.0f} ms CPU per symbol; "
        f"{run['speedup_vs_seed']:.0f}x the seed loop ({run['seed_symbols_per_s']:.1f}/s, "
        f"{run['seed_success_rate']:.0%} success)"
        for run in r["runs"]
    ]
    return "<br>".join(parts), "≥ 0.9 R, ≥ 99.9% success"


def _memory(r: dict) -> tuple[str, str]:
    peaks = r["peak_mb"]
    growth = r["growth"]
    sizes = [str(s) for s in r["sizes"]]
    middle = sizes[len(sizes) // 2]
    return (
        f"at {int(middle):,} symbols: "
        + ", ".join(f"{asset} {by_size[middle]:.0f} MB" for asset, by_size in peaks.items())
        + f"; growth {sizes[0]}→{sizes[-1]}: "
        + " / ".join(f"{g:+.1%}" for g in growth.values()),
        "≤ 250 MB at 1,205, ≤ 15% growth 300→5,000",
    )


def _footprint(r: dict) -> tuple[str, str]:
    small = r["small_box"]
    parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(small["peak_by_process_mb"].items()))
    text = f"{small['peak_total_mb']:.0f} MB RSS ({parts}); PSS {small['pss_at_peak_mb']:.0f} MB"
    if "dagster_dev" in r:
        text += f"; `dagster dev` {r['dagster_dev']['peak_total_mb']:.0f} MB"
    return text, "≤ 400 MB"


def _implied_vol(r: dict) -> tuple[str, str]:
    vollib = r.get("ours_over_vollib")
    return (
        f"{r['ours_options_per_s'] / 1e6:.1f} M options/s: {r['ours_over_newton']:.2f}x plain "
        f"Newton, {f'{vollib:.0f}x vollib' if vollib else 'vollib not installed'}; "
        f"max error {r['ours_max_abs_err_pinned']:.1e}",
        "≥ 2x Newton, ≤ 1e-10",
    )


def _warehouse(r: dict) -> tuple[str, str]:
    pg, ratio, lite = r["postgres_rows_per_s"], r["postgres_over_raw_copy"], r["sqlite_rows_per_s"]
    return (
        f"PostgreSQL insert {pg['insert_bulk'] / 1e3:.0f}k rows/s ({ratio['insert_bulk']:.2f}x "
        f"raw COPY {pg['raw_copy'] / 1e3:.0f}k), re-upsert {pg['reupsert_bulk'] / 1e3:.0f}k "
        f"({ratio['reupsert_bulk']:.2f}x); per-symbol batches {ratio['insert_per_symbol']:.2f}x "
        f"/ {ratio['reupsert_per_symbol']:.2f}x; SQLite {lite['insert_bulk'] / 1e3:.0f}k / "
        f"{lite['reupsert_bulk'] / 1e3:.0f}k",
        "≥ 0.6x / ≥ 0.4x raw COPY",
    )


def _backfill(r: dict) -> tuple[str, str]:
    return (
        f"{r['wall_s']:.1f} s wall in {r['runs']} run ({r['symbols']} symbols x "
        f"{r['sessions']} sessions, {r['rows_written']:,} rows); one run per partition: "
        f"~{r['baseline_run_per_partition_s']:.0f} s",
        "≤ 60 s",
    )


def _soak(r: dict) -> tuple[str, str]:
    return (
        f"daemon {r['daemon_rss_after_first_run_mb']:.0f} MB after the first run -> "
        f"{r['daemon_rss_end_mb']:.0f} MB after {r['minutes']:.0f} min "
        f"({r['end_over_baseline']:.2f}x, {r['growth_mb_per_hour']:+.0f} MB/h); runs {r['runs']}; "
        f"peak {r['peak_total_mb']:.0f} MB",
        "flat after warm-up (no goal in the issue)",
    )


def _big_body(r: dict) -> tuple[str, str]:
    return (
        f"{r['symbols']} symbols, one answering {r['huge_body_mb']} MB: peak "
        f"{r['huge']['recorded_peak_mb']:.0f} MB "
        f"against {r['baseline']['recorded_peak_mb']:.0f} MB "
        f"without it ({r['ratio']:.2f}x); the symbol {r['huge']['symbol_status']}",
        f"<= {r['goal_peak_mb']} MB",
    )


def _budget(r: dict) -> tuple[str, str]:
    stores = r["stores"]
    shared = ", ".join(
        f"{name} {stores[name]['one_process_per_s']:,}/s"
        for name in ("sqlite", "redis", "postgresql")
        if name in stores
    )
    return (
        f"reservations from one process: {shared} (token bucket "
        f"{stores['token_bucket']['one_process_per_s']:,}/s)",
        "the slowest store well above the largest default budget (100/s)",
    )


ROWS: dict[str, Callable[[dict], tuple[str, str]]] = {
    "scan": _scan,
    "memory": _memory,
    "footprint": _footprint,
    "implied_vol": _implied_vol,
    "warehouse": _warehouse,
    "backfill": _backfill,
    "soak": _soak,
    "big_body": _big_body,
    "budget": _budget,
}
TITLES = {
    "scan": "1. Scan throughput",
    "memory": "2. Memory (run process peak RSS)",
    "footprint": "3. Deployment footprint",
    "implied_vol": "4. Implied volatility",
    "warehouse": "5. Warehouse ingest",
    "backfill": "6. Backfill (daily_bars, 1 year)",
    "soak": "Soak (small-box daemon)",
    "big_body": "7. Runaway response",
    "budget": "9. Shared provider budget",
}


def table(results: dict[str, tuple[dict, str]]) -> str:
    machine = common.machine()
    lines = [
        f"Measured {datetime.now(UTC):%Y-%m-%d} on {machine['nproc']} x {machine['cpu_model']}, "
        f"{machine['mem_gib']} GiB, Python {machine['python']}.",
        "",
        "| Benchmark | Result | Goal | Command |",
        "|---|---|---|---|",
    ]
    for name, (record, command) in results.items():
        result, goal = ROWS[name](record)
        lines.append(f"| {TITLES[name]} | {result} | {goal} | `{command}` |")
    return "\n".join(lines)


def plot(results: dict[str, tuple[dict, str]]) -> None:
    """One figure with a panel per benchmark that has something to compare."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if "scan" in results:
        for run in results["scan"][0]["runs"]:
            ok = run["symbols_per_s"] * run["success_rate"]
            seed_ok = run["seed_symbols_per_s"] * run["seed_success_rate"]
            panels.append(
                (
                    f"Scan at R = {run['rate_limit_per_s']}/s (symbols with data/s)",
                    ["seed loop", "wheel_premiums", "0.9 R"],
                    [seed_ok, ok, 0.9 * run["rate_limit_per_s"]],
                )
            )
    if "footprint" in results:
        r = results["footprint"][0]
        baseline = "dagster_dev" in r
        labels = (["dagster dev"] if baseline else []) + ["small box"]
        values = [r["dagster_dev"]["peak_total_mb"]] if baseline else []
        values += [r["small_box"]["peak_total_mb"]]
        panels.append(("Deployment RSS during a run (MB)", labels, values))
    if "warehouse" in results:
        r = results["warehouse"][0]["postgres_rows_per_s"]
        panels.append(
            (
                "PostgreSQL ingest (k rows/s)",
                ["raw COPY", "upsert: insert", "upsert: update"],
                [r["raw_copy"] / 1e3, r["insert_bulk"] / 1e3, r["reupsert_bulk"] / 1e3],
            )
        )
    if "backfill" in results:
        r = results["backfill"][0]
        panels.append(
            (
                "1-year daily_bars backfill (s)",
                ["run per partition", "single run"],
                [r["baseline_run_per_partition_s"], r["wall_s"]],
            )
        )
    if not panels:
        return
    figure, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    for axis, (title, labels, values) in zip(
        axes if len(panels) > 1 else [axes], panels, strict=True
    ):
        axis.bar(labels, values, color=["#999999"] + ["#3b75af"] * (len(values) - 1))
        axis.set_title(title, fontsize=10)
        axis.tick_params(axis="x", labelsize=8)
        for index, value in enumerate(values):
            axis.annotate(f"{value:,.0f}", (index, value), ha="center", va="bottom", fontsize=8)
    figure.tight_layout()
    common.OUT.mkdir(parents=True, exist_ok=True)
    figure.savefig(common.OUT / "summary.png", dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated names")
    args = parser.parse_args()
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    results = {name: run(name, args.quick) for name in names}
    text = table(results)
    print("\n" + text)
    common.OUT.mkdir(parents=True, exist_ok=True)
    payload = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "machine": common.machine(),
        "results": {
            name: {**record, "command": command} for name, (record, command) in results.items()
        },
        "table": text,
    }
    (common.OUT / "results.json").write_text(json.dumps(payload, indent=2) + "\n")
    plot(results)
    print(f"\nwrote {common.OUT / 'results.json'} and {common.OUT / 'summary.png'}")


if __name__ == "__main__":
    sys.exit(main())
