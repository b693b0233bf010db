"""What the opt-in allocation tracing costs: the wheel scan with `VOLARIS_TRACEMALLOC_TOP=15`
against the same scan without it (the baseline, same run of this script, same universe).

    python -m bench.bench_tracemalloc [--symbols 300]

Each scan is its own `dagster asset materialize` process on a fresh warehouse copy of the
universe (simulated market, SQLite, temp Dagster home); reported per scan: the fan-out's own
duration (`duration_s` metadata), the run process's peak RSS (VmHWM), and for the traced scan
the traced peak and the top allocation it recorded. The ratios say how much slower and larger a
traced run is, which is why tracing is off by default.
"""

from __future__ import annotations

import argparse

from bench import common

SESSION = "2026-11-24"
TOP = "15"


def scan(size: int, top: str) -> dict[str, object]:
    with common.workdir(f"tracemalloc-{top}") as work:
        universe = common.write_universe(work / "universe.csv", common.universe(size))
        env = common.run_env(work, VOLARIS_UNIVERSE=str(universe), VOLARIS_TRACEMALLOC_TOP=top)
        log = work / "run.log"
        code, _, _ = common.run_sampled(
            common.dagster_materialize("sp500_constituents,scan_universe"), env, log
        )
        common.check(code, log, "universe")
        process = common.start_group(
            common.dagster_materialize("wheel_premiums", partition=SESSION), env, log
        )
        with common.RssSampler([process.pid], track_hwm=True) as sampler:
            common.check(process.wait(), log, "wheel_premiums")
        meta = common.materialization_metadata(work / "home", "wheel_premiums")
        traced = observation(work, "wheel_premiums") if top != "0" else {}
    return {
        "duration_s": meta.get("duration_s"),
        "symbols_ok": meta.get("symbols_ok"),
        "peak_mb": round(max(sampler.hwm.get(process.pid, 0.0), sampler.peak_mb), 1),
        **traced,
    }


def observation(work, asset: str) -> dict[str, object]:
    """The traced peak and the first line of the top-allocations table the run recorded."""
    import os

    import dagster as dg

    os.environ["DAGSTER_HOME"] = str(work / "home")
    with dg.DagsterInstance.get() as instance:
        [record] = instance.fetch_observations(dg.AssetKey(asset), limit=1).records
        meta = record.asset_observation.metadata
        top = meta["top_allocations"].value.splitlines()
    return {"traced_peak_mb": meta["traced_peak_mb"].value, "top_allocation": top[2]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=300)
    args = parser.parse_args()
    baseline = scan(args.symbols, "0")
    traced = scan(args.symbols, TOP)
    slower = traced["duration_s"] / baseline["duration_s"]
    larger = traced["peak_mb"] / baseline["peak_mb"]
    print(
        f"wheel_premiums over {args.symbols} symbols: {baseline['duration_s']} s, "
        f"{baseline['peak_mb']} MB untraced; {traced['duration_s']} s, {traced['peak_mb']} MB "
        f"traced (traced peak {traced['traced_peak_mb']} MB) -> {slower:.2f}x time, "
        f"{larger:.2f}x memory; top: {traced['top_allocation']}"
    )
    common.emit(
        {
            "benchmark": "tracemalloc",
            "symbols": args.symbols,
            "baseline": baseline,
            "traced": traced,
            "time_ratio": round(slower, 3),
            "peak_ratio": round(larger, 3),
        }
    )


if __name__ == "__main__":
    main()
