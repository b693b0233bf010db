"""A runaway response: peak RSS of an `option_chains` run over 100 symbols through the real
Schwab client when one symbol's answer is 50 MB, against the same run without it.

    python -m bench.bench_big_body [--symbols 100] [--huge-mb 50] [--uncapped]

Set-up (all in a temp dir): the sandbox in its own process (`python -m volaris_assets.sandbox`),
answering every request about one symbol of the universe (its middle one) with `--huge-mb` MB
of JSON, streamed chunked as a provider gone wrong would (fault `huge_body_symbols`); the
universe (the shipped scan universe's first N symbols); Schwab as the only chain provider.
Timed and measured: `dagster asset materialize ... --select option_chains --partition
2026-11-24-15:45`, a process of its own for each run, as a deployment runs it.

Baseline, same machine, same run of this script: the same materialization against a sandbox
without the huge body. Reported: each run's peak RSS as the run itself records it (`peak_rss_mb`
metadata, its own VmHWM at the end) and as the kernel's high-water mark of that process
sampled from outside (VmHWM, read every 0.1 s), the ratio of the two runs' peaks, and what the
huge symbol was recorded as. `--uncapped` adds a third run with `VOLARIS_MAX_RESPONSE_MB=1024`,
i.e. without an effective cap, to show what the cap prevents.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import sqlalchemy as sa

from bench import common
from bench.bench_memory import hwm_mb
from volaris_assets import calendar

SNAPSHOT = "2026-11-24-15:45"
GOAL_MB = 250
SANDBOX_KEYS = {
    "SCHWAB_APP_KEY": "sbx-schwab-app-key",
    "SCHWAB_SECRET_KEY": "sbx-schwab-secret",
    "SCHWAB_REFRESH_TOKEN": "sbx-schwab-refresh-token",
}
# A paid-plan budget, so the run measures memory rather than waiting on Schwab's 120/min.
RATE_LIMITS = "schwab=200/1"


def start_sandbox(work: Path, faults: str) -> tuple[object, str]:
    """The sandbox in its own process at the snapshot's instant; (process, Schwab base URL)."""
    port = common.free_port()
    command = [common.PYTHON, "-m", "volaris_assets.sandbox", "--port", str(port)]
    command += ["--faults", faults, "--as-of", calendar.snapshot_instant(SNAPSHOT).isoformat()]
    process = common.start_group(command, common.run_env(work), work / "sandbox.log")
    common.wait_for_port(port)
    return process, f"http://127.0.0.1:{port}/schwab"


def outcome_of(work: Path, symbol: str) -> dict[str, object]:
    """What `sync_stock_results` says about the run: symbols ok, and `symbol`'s own row."""
    engine = sa.create_engine(f"sqlite:///{work / 'warehouse.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT symbol, status, error_type, error_message FROM sync_stock_results "
                "WHERE asset = 'option_chains'"
            )
        ).all()
    engine.dispose()
    mine = next((r for r in rows if r[0] == symbol), None)
    return {
        "symbols": len(rows),
        "ok": sum(1 for r in rows if r[1] == "ok"),
        "symbol_status": mine[1] if mine else None,
        "symbol_error": f"{mine[2]}: {mine[3]}" if mine and mine[2] else None,
    }


def measure(symbols: list[str], huge: str | None, huge_mb: float, cap: str | None) -> dict:
    """One option_chains run against a fresh sandbox (and warehouse and Dagster home)."""
    faults = f"huge_body_symbols={huge},huge_body_mb={huge_mb:g}" if huge else "none"
    with common.workdir("big-body") as work:
        sandbox, base = start_sandbox(work, faults)
        try:
            extra = {"VOLARIS_MAX_RESPONSE_MB": cap} if cap else {}
            env = common.run_env(
                work,
                VOLARIS_UNIVERSE=str(common.write_universe(work / "universe.csv", symbols)),
                VOLARIS_CHAIN_PROVIDERS="schwab",
                VOLARIS_RATE_LIMITS=RATE_LIMITS,
                SCHWAB_API_BASE=base,
                **SANDBOX_KEYS,
                **extra,
            )
            log = work / "run.log"
            code, _, _ = common.run_sampled(
                common.dagster_materialize("sp500_constituents,scan_universe"), env, log
            )
            common.check(code, log, "universe")
            command = common.dagster_materialize("option_chains", partition=SNAPSHOT)
            process = common.start_group(command, env, log)
            with common.RssSampler([process.pid], track_hwm=True) as sampler:
                common.check(process.wait(), log, "option_chains")
            meta = common.materialization_metadata(work / "home", "option_chains")
            result = outcome_of(work, huge or symbols[0])
        finally:
            common.stop_group(sandbox)
    return {
        "huge_body_mb": huge_mb if huge else 0,
        "max_response_mb": cap or "default",
        "recorded_peak_mb": meta.get("peak_rss_mb"),
        "hwm_mb": round(hwm_mb(sampler, process.pid), 1),
        "duration_s": meta.get("duration_s"),
        "command": common.shown(command),
        **result,
    }


def show(label: str, run: dict) -> None:
    print(
        f"{label}: peak RSS {run['recorded_peak_mb']} MB (as recorded; VmHWM {run['hwm_mb']} MB), "
        f"{run['ok']}/{run['symbols']} symbols ok in {run['duration_s']} s"
        + (f"; huge symbol: {run['symbol_error']}" if run["huge_body_mb"] else "")
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--huge-mb", type=float, default=50.0)
    parser.add_argument("--uncapped", action="store_true", help="also run without a cap")
    args = parser.parse_args()
    symbols = common.universe(args.symbols)
    huge = symbols[len(symbols) // 2]

    baseline = measure(symbols, None, args.huge_mb, None)
    capped = measure(symbols, huge, args.huge_mb, None)
    uncapped = measure(symbols, huge, args.huge_mb, "1024") if args.uncapped else None
    ratio = capped["recorded_peak_mb"] / baseline["recorded_peak_mb"]
    print(
        f"option_chains over {args.symbols} symbols via Schwab on the sandbox; {huge} answers "
        f"{args.huge_mb:g} MB"
    )
    show("  baseline (no huge body)", baseline)
    show("  huge body, default cap ", capped)
    print(
        f"  ratio huge/baseline: {ratio:.2f}x; goal: peak <= {GOAL_MB} MB -> "
        f"{'met' if capped['recorded_peak_mb'] <= GOAL_MB else 'NOT met'}"
    )
    if uncapped:
        show("  huge body, cap 1024 MB ", uncapped)
    common.emit(
        {
            "benchmark": "big_body",
            "symbols": args.symbols,
            "huge_symbol": huge,
            "huge_body_mb": args.huge_mb,
            "baseline": baseline,
            "huge": capped,
            "uncapped": uncapped,
            "ratio": round(ratio, 3),
            "goal_peak_mb": GOAL_MB,
        }
    )


if __name__ == "__main__":
    main()
