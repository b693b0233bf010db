"""Memory: peak RSS of the run processes for `option_chains` and `wheel_premiums` at 300, 1,205
and 5,000 symbols (simulated market, SQLite warehouse and Dagster storage in a temp dir), and of
`intraday_bars` (a whole session of 1-minute bars, its 5-minute rebuild and its checks), the
heaviest run a small box makes in market hours.

    python -m bench.bench_memory [--quick] [--sizes 300,1205,5000]

Each size gets a fresh Dagster home and warehouse; each asset runs as its own
`dagster asset materialize` process (the assets have different partitions, so a deployment
runs them as separate runs too). RSS is read from /proc/<pid>/status every 0.1 s for the plot;
the peak reported is the run process's own high-water mark (VmHWM, the kernel's figure, which a
sample can miss), with the process tree's sampled peak beside it (the CLI's compute-log `tail`
and watcher children). The baseline is a run that does no per-symbol work: the universe
materialization of the same code location. Writes the RSS-over-time plot to
bench/out/rss_benchmark2.png and docs/bench/rss_benchmark2.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import common

SNAPSHOT = "2026-11-24-15:45"
SESSION = "2026-11-24"
ASSETS = (
    ("option_chains", SNAPSHOT),
    ("wheel_premiums", SESSION),
    ("intraday_bars", SESSION),
)
GOAL_MB = 250
DOCS_PLOT = common.ROOT / "docs" / "bench" / "rss_benchmark2.png"


def hwm_mb(sampler: common.RssSampler, pid: int) -> float:
    """The run process's peak: its last VmHWM reading, or the sampled maximum if larger."""
    sampled = sampler.peak_by_pid().get(pid, 0.0)
    return max(sampled, sampler.hwm.get(pid, 0.0))


def measure(size: int) -> dict[str, object]:
    """Universe, then each asset in its own process, for `size` symbols."""
    out: dict[str, object] = {"symbols": size}
    with common.workdir(f"memory-{size}") as work:
        csv = common.write_universe(work / "universe.csv", common.universe(size))
        env = common.run_env(work, VOLARIS_UNIVERSE=str(csv))
        log = work / "run.log"
        process = common.start_group(
            common.dagster_materialize("sp500_constituents,scan_universe"), env, log
        )
        with common.RssSampler([process.pid], track_hwm=True) as sampler:
            common.check(process.wait(), log, "universe")
        out["baseline_mb"] = round(hwm_mb(sampler, process.pid), 1)
        for asset, partition in ASSETS:
            process = common.start_group(
                common.dagster_materialize(asset, partition=partition), env, log
            )
            with common.RssSampler([process.pid], track_hwm=True) as sampler:
                common.check(process.wait(), log, asset)
            meta = common.materialization_metadata(work / "home", asset)
            out[asset] = {
                "peak_mb": round(hwm_mb(sampler, process.pid), 1),
                "tree_peak_mb": round(sampler.peak_mb, 1),
                "recorded_peak_mb": meta.get("peak_rss_mb"),
                "symbols_ok": meta.get("symbols_ok"),
                "rows_written": meta.get("rows_written"),
                "duration_s": meta.get("duration_s"),
                "series": [
                    (round(t, 2), round(per_pid[process.pid], 1))
                    for t, _, per_pid in sampler.samples
                    if process.pid in per_pid
                ],
            }
    return out


def plot(results: list[dict[str, object]], paths: list[Path]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(ASSETS), figsize=(5 * len(ASSETS), 4), sharey=True)
    for axis, (asset, _) in zip(axes, ASSETS, strict=True):
        for result in results:
            run = result[asset]
            times = [t for t, _ in run["series"]]
            values = [v for _, v in run["series"]]
            axis.plot(times, values, label=f"{result['symbols']:,} symbols")
        axis.axhline(GOAL_MB, color="grey", linestyle="--", linewidth=1, label=f"{GOAL_MB} MB goal")
        axis.set_title(f"{asset} run process")
        axis.set_xlabel("seconds since the run started")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("RSS (MB)")
    axes[0].set_ylim(bottom=0)
    axes[-1].legend(loc="lower right")
    machine = common.machine()
    figure.suptitle(
        "dagster asset materialize, simulated market, SQLite "
        f"({machine['nproc']} x {machine['cpu_model']})"
    )
    figure.tight_layout()
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="sizes 100, 300, 600")
    parser.add_argument("--sizes", default="300,1205,5000")
    args = parser.parse_args()
    sizes = [100, 300, 600] if args.quick else [int(s) for s in args.sizes.split(",")]

    results = [measure(size) for size in sizes]
    paths = [common.OUT / "rss_benchmark2.png"] + ([] if args.quick else [DOCS_PLOT])
    plot(results, paths)

    first, last = results[0], results[-1]
    summary: dict[str, object] = {}
    for asset, _ in ASSETS:
        growth = last[asset]["peak_mb"] / first[asset]["peak_mb"] - 1
        summary[asset] = round(growth, 4)
        print(f"{asset}:")
        for result in results:
            run = result[asset]
            print(
                f"  {result['symbols']:>5,} symbols: peak {run['peak_mb']:.0f} MB "
                f"(tree {run['tree_peak_mb']:.0f} MB, recorded {run['recorded_peak_mb']} MB), "
                f"{run['symbols_ok']} ok, {run['rows_written']:,} rows in {run['duration_s']} s; "
                f"{run['peak_mb'] / result['baseline_mb']:.2f}x the no-work run "
                f"({result['baseline_mb']:.0f} MB)"
            )
        print(f"  growth {first['symbols']:,} -> {last['symbols']:,}: {growth:+.1%}")
    print(f"plot: {', '.join(str(p) for p in paths)}")
    common.emit(
        {
            "benchmark": "memory",
            "quick": args.quick,
            "sizes": sizes,
            "peak_mb": {
                asset: {r["symbols"]: r[asset]["peak_mb"] for r in results} for asset, _ in ASSETS
            },
            "tree_peak_mb": {
                asset: {r["symbols"]: r[asset]["tree_peak_mb"] for r in results}
                for asset, _ in ASSETS
            },
            "baseline_mb": {r["symbols"]: r["baseline_mb"] for r in results},
            "growth": summary,
            "goal_peak_mb_at_1205": GOAL_MB,
            "goal_growth": 0.15,
            "command": common.shown(
                common.dagster_materialize("option_chains", partition=SNAPSHOT)
            ),
            "plot": [str(p) for p in paths],
        }
    )


if __name__ == "__main__":
    main()
