"""Backfill: one year of `daily_bars` for 500 symbols on the simulated market, in one run.

    python -m bench.bench_backfill [--quick] [--symbols 500] [--sessions 252]

The timed command is the one a user types,
`dagster asset materialize -m volaris_assets.definitions --select daily_bars
--partition-range START...END`, which `BackfillPolicy.single_run()` lets Dagster execute as one
run over the whole range (SQLite warehouse and Dagster storage in a temp dir). The baseline, in
the same invocation, is what the range costs without that policy: one run per partition, timed
on a few partitions with the same universe and extrapolated to the range.
"""

from __future__ import annotations

import argparse

from bench import common

END_SESSION = "2026-11-24"
BASELINE_PARTITIONS = 3


def session_keys(count: int) -> list[str]:
    """The `count` session partition keys up to and including END_SESSION."""
    from datetime import date

    from volaris_assets import calendar

    end = date.fromisoformat(END_SESSION)
    days = [s.day for s in calendar.sessions_between(calendar.FIRST_SESSION, end)]
    return [d.isoformat() for d in days[-count:]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 symbols, 63 sessions")
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=252)
    args = parser.parse_args()
    if args.quick:
        args.symbols, args.sessions = 100, 63
    keys = session_keys(args.sessions)
    ranged = f"{keys[0]}...{keys[-1]}"

    with common.workdir("backfill") as work:
        csv = common.write_universe(work / "universe.csv", common.universe(args.symbols))
        env = common.run_env(work, VOLARIS_UNIVERSE=str(csv))
        log = work / "run.log"
        code, _, _ = common.run_sampled(common.dagster_materialize("sp500_constituents"), env, log)
        common.check(code, log, "universe")
        runs_before = common.run_count(work / "home")

        command = common.dagster_materialize("daily_bars", ranged=ranged)
        code, wall_s, sampler = common.run_sampled(command, env, log)
        common.check(code, log, "backfill")
        runs = common.run_count(work / "home") - runs_before
        meta = common.materialization_metadata(work / "home", "daily_bars")

        per_partition = []
        for key in keys[-BASELINE_PARTITIONS:]:
            code, seconds, _ = common.run_sampled(
                common.dagster_materialize("daily_bars", partition=key), env, log
            )
            common.check(code, log, f"baseline partition {key}")
            per_partition.append(seconds)
    baseline_s = sum(per_partition) / len(per_partition) * len(keys)

    print(f"daily_bars backfill: {args.symbols} symbols x {len(keys)} sessions ({ranged})")
    print(f"  command: {common.shown(command)}")
    print(
        f"  wall {wall_s:.1f} s in {runs} run(s); step {meta.get('duration_s')} s; "
        f"rows {meta.get('rows_written')}; symbols ok {meta.get('symbols_ok')}/{args.symbols}; "
        f"peak RSS {meta.get('peak_rss_mb')} MB (sampled {sampler.peak_mb:.0f} MB)"
    )
    print(
        f"  baseline, one run per partition: {sum(per_partition) / len(per_partition):.1f} s per "
        f"run x {len(keys)} = {baseline_s:.0f} s (from {BASELINE_PARTITIONS} runs); "
        f"single run is {baseline_s / wall_s:.1f}x faster"
    )
    common.emit(
        {
            "benchmark": "backfill",
            "quick": args.quick,
            "symbols": args.symbols,
            "sessions": len(keys),
            "range": ranged,
            "wall_s": round(wall_s, 2),
            "runs": runs,
            "step_s": meta.get("duration_s"),
            "rows_written": meta.get("rows_written"),
            "symbols_ok": meta.get("symbols_ok"),
            "peak_rss_mb": meta.get("peak_rss_mb"),
            "baseline_run_per_partition_s": round(baseline_s, 1),
            "speedup_vs_run_per_partition": round(baseline_s / wall_s, 2),
            "goal_s": 60,
            "command": common.shown(command),
        }
    )


if __name__ == "__main__":
    main()
