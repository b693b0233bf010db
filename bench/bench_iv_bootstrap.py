"""IV history bootstrap: a year of `iv_metrics` history for the S&P 500, then today's IV rank.

    python -m bench.bench_iv_bootstrap [--quick] [--symbols 500] [--sessions 252]

On a fresh install (temp Dagster home and SQLite warehouse, simulated market, default settings)
the timed command is the one a user types,
`dagster asset materialize -m volaris_assets.definitions --select iv_history_bootstrap
--partition-range FIRST...LATEST`, over the `--sessions` sessions ending at the latest
completed one, as one run. Then `iv_metrics` for the latest session, as its schedule would run
it, and the bar: the share of symbols whose latest row has IV rank and percentile, and whose
`iv_history_days` is the full window. The baseline, in the same invocation and on another fresh
install, is how the live `iv_metrics` fills the same history on the simulated market (which
replays any past chain): two of the sessions, one run each, per symbol-session of step time.
"""

from __future__ import annotations

import argparse
import sqlite3
from datetime import UTC, datetime

from bench import common

BASELINE_SESSIONS = 2
FULL_SYMBOLS, FULL_SESSIONS = 500, 252


def session_keys(count: int) -> list[str]:
    """The `count` session partition keys up to and including the latest completed session."""
    from volaris_assets import calendar

    latest = calendar.last_completed_session(datetime.now(UTC)).day
    days = [s.day for s in calendar.sessions_between(calendar.FIRST_SESSION, latest)]
    return [d.isoformat() for d in days[-count:]]


def latest_rows(work, day: str) -> tuple[int, int, int]:
    """(rows, rows with rank and percentile, rows with the full history) on `day`."""
    with sqlite3.connect(work / "warehouse.db") as db:
        return db.execute(
            "SELECT COUNT(*), SUM(iv_rank IS NOT NULL AND iv_percentile IS NOT NULL), "
            "SUM(iv_history_days = ?) FROM iv_metrics WHERE date = ?",
            (FULL_SESSIONS, day),
        ).fetchone()


def fresh_install(work, symbols: list[str]) -> tuple[dict[str, str], object]:
    csv = common.write_universe(work / "universe.csv", symbols)
    env = common.run_env(work, VOLARIS_UNIVERSE=str(csv))
    log = work / "run.log"
    code, _, _ = common.run_sampled(common.dagster_materialize("sp500_constituents"), env, log)
    common.check(code, log, "universe")
    return env, log


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 symbols, 30 sessions")
    parser.add_argument("--symbols", type=int, default=FULL_SYMBOLS)
    parser.add_argument("--sessions", type=int, default=FULL_SESSIONS)
    args = parser.parse_args()
    if args.quick:
        args.symbols, args.sessions = 20, 30
    keys = session_keys(args.sessions)
    symbols = common.universe(args.symbols)
    ranged = f"{keys[0]}...{keys[-1]}"

    with common.workdir("iv-bootstrap") as work:
        env, log = fresh_install(work, symbols)
        command = common.dagster_materialize("iv_history_bootstrap", ranged=ranged)
        code, wall_s, sampler = common.run_sampled(command, env, log)
        common.check(code, log, "bootstrap")
        meta = common.materialization_metadata(work / "home", "iv_history_bootstrap")
        code, _, _ = common.run_sampled(
            common.dagster_materialize("iv_metrics", partition=keys[-1]), env, log
        )
        common.check(code, log, "iv_metrics on the latest session")
        rows, ranked, full = latest_rows(work, keys[-1])

    with common.workdir("iv-bootstrap-baseline") as work:
        env, log = fresh_install(work, symbols)
        baseline_step_s = 0.0
        for key in keys[-BASELINE_SESSIONS - 1 : -1]:
            code, _, _ = common.run_sampled(
                common.dagster_materialize("iv_metrics", partition=key), env, log
            )
            common.check(code, log, f"baseline iv_metrics {key}")
            baseline_step_s += float(
                common.materialization_metadata(work / "home", "iv_metrics")["duration_s"]
            )

    symbol_sessions = args.symbols * len(keys)
    step_s = float(meta["duration_s"])
    per_ms = step_s / symbol_sessions * 1000
    baseline_ms = baseline_step_s / (args.symbols * BASELINE_SESSIONS) * 1000
    print(f"iv_history_bootstrap: {args.symbols} symbols x {len(keys)} sessions ({ranged})")
    print(f"  command: {common.shown(command)}")
    print(
        f"  wall {wall_s:.1f} s, step {step_s:.1f} s ({per_ms:.1f} ms per symbol-session); "
        f"rows {meta.get('rows_written')}; symbols ok {meta.get('symbols_ok')}/{args.symbols}; "
        f"peak RSS {meta.get('peak_rss_mb')} MB (sampled {sampler.peak_mb:.0f} MB)"
    )
    print(
        f"  latest session {keys[-1]}: {ranked}/{rows} with IV rank and percentile, "
        f"{full}/{rows} with iv_history_days = {FULL_SESSIONS}"
    )
    print(
        f"  baseline, live iv_metrics replaying the simulated market: {baseline_ms:.1f} ms per "
        f"symbol-session; bootstrap/baseline = {per_ms / baseline_ms:.2f}"
    )
    common.emit(
        {
            "benchmark": "iv_bootstrap",
            "symbols": args.symbols,
            "sessions": len(keys),
            "range": ranged,
            "wall_s": round(wall_s, 1),
            "step_s": round(step_s, 1),
            "ms_per_symbol_session": round(per_ms, 2),
            "full_500x252_estimate_s": round(per_ms * FULL_SYMBOLS * FULL_SESSIONS / 1000),
            "rows_written": meta.get("rows_written"),
            "symbols_ok": meta.get("symbols_ok"),
            "peak_rss_mb": meta.get("peak_rss_mb"),
            "latest_session": keys[-1],
            "latest_ranked_share": round(ranked / rows, 4) if rows else 0.0,
            "latest_full_history_share": round(full / rows, 4) if rows else 0.0,
            "baseline_iv_metrics_ms_per_symbol_session": round(baseline_ms, 2),
            "ratio_vs_baseline": round(per_ms / baseline_ms, 3),
            "command": common.shown(command),
        }
    )


if __name__ == "__main__":
    main()
