"""Scan throughput: `wheel_premiums` over 1,205 symbols through the real Schwab client against
the sandbox, with a rate limit, latency and transient faults; the seed's loop as the baseline.

    python -m bench.bench_scan [--quick] [--symbols 1205] [--rates 10,100] [--concurrency 64]
    python -m bench.bench_scan --pooled [--symbols 1205] [--concurrency 64]

Set-up (all in a temp dir): the sandbox in its own process (`python -m volaris_assets.sandbox`,
so it never shares this process's GIL) enforcing `schwab=R/1` (a sliding window of R requests
per second, answered with 429 + Retry-After beyond it) with 50-150 ms latency and 10% transient
faults per request (3% 429, 4% 5xx, 2% connection reset mid-body, 1% hang past the client's
10 s timeout). An injected 429 advises what a window-based provider would (`--retry-after
window`, the default: the seconds until the account's window admits a request, "0" while it has
room); `--retry-after 1` advises a fixed second, and since every 429 pauses the whole budget for
what it advises (issue 14), 3% of requests each idling it for 1 s caps a run at
1 / (1 + 0.03 x R x 1 s) of its budget: 0.77 at R = 10, 0.25 at R = 100. The universe is the
shipped scan universe padded to 1,205 with synthetic tickers, and
the client-side budget is set to the same R (`VOLARIS_RATE_LIMITS=schwab=R/1:1`; the token bucket
paces at 97% of it, see `providers/rate_limit.py`). Two values of R by default: 10/s, where the
budget is the limit, and 100/s, where the run process runs out of CPU first: the scan is one
interpreter (its event loop and its writer thread share one GIL), while the sandbox, measured
in every run (`sandbox_cpu_s`), uses a fifth of the other core or less. At high R the
sandbox's replies are rendered once before timing (its pandas renderer, ~30 ms a chain, would
otherwise be what is measured; a real provider does not render per request).

Timed: `dagster asset materialize ... --select wheel_premiums --partition 2026-11-24`. Reported:
the command's wall time, the step's fan-out time (what `symbols_per_s` metadata reports), the
requests sent (`attempts` in `sync_stock_results`) and the success rate. With a fault on 10% of
requests each symbol costs 1/0.9 requests on average, so R x 0.9 symbols/s is the ceiling
(`ceiling_over_r` = 1 - the share of requests the profile faults; `symbols_per_s_over_ceiling`
is the pace as a share of it); requests/s / R shows how much of the budget the run used.

Pooled (`--pooled`): the same scan, faults and universe over Schwab, Polygon and Yahoo at once
(`VOLARIS_CHAIN_MODE=pool`, `providers/pool.py`), the sandbox enforcing each provider's budget
per minute in HTTP requests (POOL_BUDGETS), and each client held to the same budget (it charges
every HTTP request). A Yahoo chain costs one request per expiration (about five for the scan's
window), measured first on a fault-free sandbox, so its budget serves a fifth as many chains.
The ceiling is the sum over providers of chains/s x the chance that none of a chain's
requests is faulted (0.9 for one request, 0.9^5 for five); reported: symbols/s over it, success,
and each provider's share of the symbols.

Baseline, same sandbox, same run: the seed's loop re-created on a subset: one symbol at a time
through the same client, no retries, and one INSERT per put contract (committed per symbol,
with a JSON progress file, as the seed kept one). Unpaced, it runs into the sandbox's limit and
its failures come back fast, so the speed-up is given in symbols with data per second.

Second baseline, same run: the scan with no budget at all (`unpaced_symbols_per_s`: client and
sandbox at 100,000 requests/s, same faults), what this machine's CPU allows the run process.
`symbols_per_s_over_unpaced` near 1 at some R says the run at R was held back by the machine,
not by its budget (measured on the 2-core machine: the scan reaches the same ~56 symbols/s at
R = 100 and at R = 1,000, while R = 100's ceiling is 90).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import sqlalchemy as sa

from bench import common
from volaris_assets.providers import registry, schwab
from volaris_assets.providers.base import WHOLE_CHAIN, ChainFilter, ProviderError
from volaris_assets.sandbox.faults import TRANSPORT_FAULTS, parse_faults
from volaris_assets.sandbox.server import DEFAULT_KEYS, Sandbox
from volaris_assets.sandbox.server import start_sandbox as start_in_process
from volaris_assets.scan.premiums import WheelSettings

SESSION = "2026-11-24"
SESSION_CLOSE = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
FAULTS = "rate_limit=0.03,server_error=0.04,reset=0.02,timeout=0.01,latency_ms=50-150,hang_s=15"
# The share of requests FAULTS fails outright (its faults are all transport faults): 0.1.
FAULT_FRACTION = sum(getattr(parse_faults(FAULTS), kind) for kind in TRANSPORT_FAULTS)
# The pooled run's budgets, HTTP requests per minute as the sandbox counts them: Schwab's
# inherited 120/min, a paid Polygon plan held to 300/min, Yahoo's conservative 60/min.
POOL_BUDGETS = {"schwab": 120, "polygon": 300, "yahoo": 60}
# Symbols on which each client's requests per chain are measured.
PER_CHAIN_SAMPLE = 40
# The sandbox's render time for one chain, measured here; warm-up pays off once R x this
# takes a good part of its core.
RENDER_S = 0.03
# A rate no client or sandbox window reaches: the unpaced baseline's "no budget".
UNPACED = 100_000
_SEED_TABLE = sa.text(
    "CREATE TABLE IF NOT EXISTS seed_premiums (symbol TEXT, occ_symbol TEXT, expiration TEXT, "
    "strike REAL, bid REAL, ask REAL, premium REAL, delta REAL, implied_volatility REAL, "
    "volume REAL, open_interest REAL, updated_at TEXT)"
)
_SEED_INSERT = sa.text(
    "INSERT INTO seed_premiums VALUES (:symbol, :occ, :expiration, :strike, :bid, :ask, "
    ":premium, :delta, :iv, :volume, :oi, :updated_at)"
)


def client_settings(root: str) -> dict[str, str]:
    """What points the Schwab, Polygon and Yahoo clients at the sandbox at `root`, with its
    default keys (what `Sandbox.settings()` says in process)."""
    schwab_keys = DEFAULT_KEYS["schwab"]
    return {
        "SCHWAB_API_BASE": f"{root}/schwab",
        "SCHWAB_APP_KEY": schwab_keys["app_key"],
        "SCHWAB_SECRET_KEY": schwab_keys["secret"],
        "SCHWAB_REFRESH_TOKEN": schwab_keys["refresh_token"],
        "POLYGON_API_BASE": f"{root}/polygon",
        "POLYGON_API_KEY": DEFAULT_KEYS["polygon"]["api_key"],
        "YAHOO_API_BASE": f"{root}/yahoo",
        "YAHOO_COOKIE_URL": f"{root}/yahoo/fc",
    }


def start_sandbox(work: Path, limits: dict[str, str], faults: str) -> tuple[object, dict[str, str]]:
    """The sandbox process with `faults`, enforcing `limits` (provider -> "N/SECONDS"); the
    clients' settings for it."""
    port = common.free_port()
    rate_limits = [
        arg for name, rule in limits.items() for arg in ("--rate-limit", f"{name}={rule}")
    ]
    command = [
        common.PYTHON,
        "-m",
        "volaris_assets.sandbox",
        "--port",
        str(port),
        "--faults",
        faults,
        *rate_limits,
        "--as-of",
        SESSION_CLOSE.isoformat(),
    ]
    process = common.start_group(command, common.run_env(work), work / "sandbox.log")
    common.wait_for_port(port)
    return process, client_settings(f"http://127.0.0.1:{port}")


async def warm(
    settings: dict[str, str], symbols: list[str], seed_symbols: list[str], rate: int
) -> None:
    """Request every chain once at the sandbox's rate as the scan will (its puts near 30 DTE)
    and as the seed loop will (the whole chain), so the sandbox's renderer is out of the timing."""
    client = schwab.create(settings)
    gate = asyncio.Semaphore(32)
    window = WheelSettings().request_window(SESSION_CLOSE.date())

    async def one(symbol: str, only: ChainFilter) -> None:
        async with gate:
            try:
                await client.option_chain(symbol, SESSION_CLOSE, only)
            except ProviderError:
                pass  # a faulted warm-up request is rendered on the run's first request
            await asyncio.sleep(32 / rate)

    await asyncio.gather(
        *(one(s, window) for s in symbols), *(one(s, WHOLE_CHAIN) for s in seed_symbols)
    )
    await client.aclose()


async def seed_loop(settings: dict[str, str], symbols: list[str], work: Path) -> dict[str, float]:
    """The system this replaces, re-created: sequential, no retry, a row-at-a-time INSERT."""
    client = schwab.create(settings)
    engine = sa.create_engine(f"sqlite:///{work / 'seed.db'}")
    progress = work / "seed_progress.json"
    with engine.begin() as conn:
        conn.execute(_SEED_TABLE)
    ok = 0
    started = time.perf_counter()
    for index, symbol in enumerate(symbols):
        try:
            chain = await client.option_chain(symbol, SESSION_CLOSE)
        except (ProviderError, httpx.HTTPError):
            continue
        with engine.begin() as conn:
            for row in chain[chain["right"] == "P"].itertuples():
                conn.execute(
                    _SEED_INSERT,
                    {
                        "symbol": symbol,
                        "occ": row.occ_symbol,
                        "expiration": str(row.expiration),
                        "strike": row.strike,
                        "bid": row.bid,
                        "ask": row.ask,
                        "premium": (row.bid + row.ask) / 2,
                        "delta": row.delta,
                        "iv": row.implied_volatility,
                        "volume": row.volume,
                        "oi": row.open_interest,
                        "updated_at": datetime.now(UTC).isoformat(),
                    },
                )
        ok += 1
        progress.write_text(json.dumps({"done": index + 1, "ok": ok, "symbol": symbol}))
    elapsed = time.perf_counter() - started
    await client.aclose()
    engine.dispose()
    return {
        "symbols": len(symbols),
        "seconds": elapsed,
        "symbols_per_s": len(symbols) / elapsed,
        "success_rate": ok / len(symbols),
    }


def outcomes(work: Path) -> dict[str, object]:
    """What `sync_stock_results` says about the scan run."""
    engine = sa.create_engine(f"sqlite:///{work / 'warehouse.db'}")
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT status, error_type, attempts, recorded_at, duration_ms, provider "
                "FROM sync_stock_results WHERE asset = 'wheel_premiums'"
            )
        ).all()
    engine.dispose()
    failed: dict[str, int] = {}
    for status, error_type, *_ in rows:
        if status != "ok":
            failed[error_type] = failed.get(error_type, 0) + 1
    # Only transient faults are injected and every symbol is listed, so every symbol is
    # recoverable; a permanent category here would be a bug worth seeing, and is counted.
    return {
        "symbols": len(rows),
        "ok": sum(1 for status, *_ in rows if status == "ok"),
        "requests": sum(attempts for _, _, attempts, *_ in rows),
        "failed_by_category": failed,
        "done_after_s": done_after(rows),
        "served_by": dict(Counter(r[5] for r in rows if r[0] == "ok")),
    }


def done_after(rows: list) -> dict[str, float]:
    """Seconds from the first fetch until half, 95% and all of the symbols were recorded.

    What separates the steady pace from the tail: symbols whose last attempts (a hang waiting
    for a spare token to hedge it with, backoffs, a 429's Retry-After) run on after every other
    symbol is done.
    """
    recorded = [datetime.fromisoformat(str(r[3])) for r in rows]
    start = min(at - timedelta(milliseconds=r[4]) for at, r in zip(recorded, rows, strict=True))
    seconds = sorted((at - start).total_seconds() for at in recorded)
    return {
        share: round(seconds[min(len(seconds) - 1, int(len(seconds) * fraction))], 1)
        for share, fraction in (("half", 0.5), ("p95", 0.95), ("all", 1.0))
    }


@dataclass(frozen=True)
class ScanRun:
    """One timed `wheel_premiums` run: the command's wall and CPU time, the materialization's
    metadata, what `outcomes` found, and the command as typed."""

    wall_s: float
    cpu_s: float
    meta: dict[str, object]
    scan: dict[str, object]
    command: str

    @property
    def fan_out_s(self) -> float:
        return float(self.meta["duration_s"])

    @property
    def symbols_per_s(self) -> float:
        return self.scan["symbols"] / self.fan_out_s

    @property
    def success(self) -> float:
        return self.scan["ok"] / self.scan["symbols"]


def run_scan(work: Path, symbols: list[str], concurrency: int, **chain_env: str) -> ScanRun:
    """The universe, then the timed scan, with the chain providers `chain_env` configures."""
    env = common.run_env(
        work,
        VOLARIS_UNIVERSE=str(common.write_universe(work / "universe.csv", symbols)),
        VOLARIS_CONCURRENCY=str(concurrency),
        **chain_env,
    )
    log = work / "run.log"
    setup = common.dagster_materialize("sp500_constituents,scan_universe")
    code, _, _ = common.run_sampled(setup, env, log)
    common.check(code, log, "universe")
    command = common.dagster_materialize("wheel_premiums", partition=SESSION)
    cpu_before = common.children_cpu_s()
    code, wall_s, _ = common.run_sampled(command, env, log)
    cpu_s = common.children_cpu_s() - cpu_before
    common.check(code, log, "scan")
    meta = common.materialization_metadata(work / "home", "wheel_premiums")
    return ScanRun(wall_s, cpu_s, meta, outcomes(work), common.shown(command))


@dataclass
class SchwabSandbox:
    """A work dir, the sandbox process serving it, and the clients' settings for it."""

    work: Path
    pid: int
    settings: dict[str, str]


@contextlib.contextmanager
def schwab_sandbox(
    rate: int, faults: str, symbols: list[str], seed_symbols: list[str]
) -> Iterator[SchwabSandbox]:
    """A sandbox enforcing `schwab=rate/1` with `faults`, its chains rendered beforehand where
    rendering would take a good part of its core."""
    with common.workdir("scan") as work:
        sandbox, settings = start_sandbox(work, {"schwab": f"{rate}/1"}, faults)
        try:
            if rate * RENDER_S > 0.3:
                asyncio.run(warm(settings, symbols, seed_symbols, rate))
            yield SchwabSandbox(work, sandbox.pid, settings)
        finally:
            common.stop_group(sandbox)


def schwab_scan(
    sandbox: SchwabSandbox, rate: int, symbols: list[str], concurrency: int
) -> tuple[ScanRun, float]:
    """The scan on Schwab alone, its client budget set to `rate` requests/s; with the CPU
    seconds the sandbox spent serving it (the universe assets and the scan), which say how
    much of the machine's second core the run process had to itself."""
    before = common.process_cpu_s(sandbox.pid)
    run = run_scan(
        sandbox.work,
        symbols,
        concurrency,
        VOLARIS_CHAIN_PROVIDERS="schwab",
        VOLARIS_RATE_LIMITS=f"schwab={rate}/1:1",
        **sandbox.settings,
    )
    return run, common.process_cpu_s(sandbox.pid) - before


def scan_at(rate: int, symbols: list[str], concurrency: int, seed_subset: int, faults: str) -> dict:
    """One sandbox at `rate`, the scan through it, then the seed loop through it."""
    with schwab_sandbox(rate, faults, symbols, symbols[:seed_subset]) as sandbox:
        run, sandbox_cpu_s = schwab_scan(sandbox, rate, symbols, concurrency)
        seed = asyncio.run(seed_loop(sandbox.settings, symbols[:seed_subset], sandbox.work))

    scan, step_s, per_s, success = run.scan, run.fan_out_s, run.symbols_per_s, run.success
    ceiling_over_r = 1 - FAULT_FRACTION
    seed_ok_per_s = seed["symbols_per_s"] * seed["success_rate"]
    speedup = per_s * success / seed_ok_per_s if seed_ok_per_s else float("inf")
    print(f"R = {rate} requests/s: wheel_premiums over {scan['symbols']} symbols")
    print(
        f"  wall {run.wall_s:.1f} s (command), fan-out {step_s:.1f} s: {per_s:.1f} symbols/s = "
        f"{per_s / rate:.3f} R = {per_s / (rate * ceiling_over_r):.3f} of the ceiling "
        f"({ceiling_over_r:.2f} R: a request in {1 / FAULT_FRACTION:.0f} being faulted)"
    )
    done = scan["done_after_s"]
    steady = 0.95 * scan["symbols"] / done["p95"]
    print(
        f"  symbols done after: half {done['half']} s, 95% {done['p95']} s, all {done['all']} s; "
        f"steady pace (first 95%) {steady:.1f} symbols/s = {steady / rate:.3f} R, then the "
        f"retry tail (backoffs and hedges of the last symbols to fail)"
    )
    print(
        f"  requests {scan['requests']} ({scan['requests'] / scan['symbols']:.3f}/symbol), "
        f"{scan['requests'] / step_s:.1f}/s = {scan['requests'] / step_s / rate:.3f} R"
    )
    print(
        f"  run process CPU {run.cpu_s:.1f} s (start-up included) = "
        f"{run.cpu_s / scan['symbols'] * 1000:.1f} ms per symbol; the sandbox's CPU "
        f"{sandbox_cpu_s:.1f} s = {sandbox_cpu_s / run.wall_s:.2f} of a core over the command"
    )
    print(
        f"  success {scan['ok']}/{scan['symbols']} = {success:.4%}; "
        f"failed {scan['failed_by_category']}; peak RSS {run.meta.get('peak_rss_mb')} MB"
    )
    print(
        f"  seed loop on {seed['symbols']} symbols: {seed['symbols_per_s']:.2f} symbols/s "
        f"attempted, {seed['success_rate']:.1%} success ({seed_ok_per_s:.2f} symbols/s with "
        f"data); speed-up in symbols with data per second: {speedup:.1f}x"
    )
    return {
        "rate_limit_per_s": rate,
        "symbols": scan["symbols"],
        "wall_s": round(run.wall_s, 2),
        "fan_out_s": round(step_s, 2),
        "symbols_per_s": round(per_s, 2),
        "symbols_per_s_over_r": round(per_s / rate, 3),
        "ceiling_over_r": round(ceiling_over_r, 3),
        "symbols_per_s_over_ceiling": round(per_s / (rate * ceiling_over_r), 3),
        "requests": scan["requests"],
        "requests_per_s_over_r": round(scan["requests"] / step_s / rate, 3),
        "success_rate": round(success, 5),
        "failed_by_category": scan["failed_by_category"],
        "done_after_s": scan["done_after_s"],
        "steady_symbols_per_s_over_r": round(steady / rate, 3),
        "run_cpu_s": round(run.cpu_s, 1),
        "sandbox_cpu_s": round(sandbox_cpu_s, 1),
        "peak_rss_mb": run.meta.get("peak_rss_mb"),
        "loop_lag_max_s": run.meta.get("loop_lag_max_s"),
        "seed_symbols": seed["symbols"],
        "seed_symbols_per_s": round(seed["symbols_per_s"], 3),
        "seed_success_rate": round(seed["success_rate"], 4),
        "speedup_vs_seed": round(speedup, 1),
        "command": run.command,
    }


def unpaced_symbols_per_s(symbols: list[str], concurrency: int, faults: str) -> float:
    """What this machine can scan at all: the same scan, faults and sandbox with no budget
    anywhere (UNPACED requests/s on both sides). A paced run at R can only reach R x the
    ceiling where this is higher; where it is not, the machine's CPU, not the budget, is
    what a run at R measures."""
    rate = UNPACED
    with schwab_sandbox(rate, faults, symbols, []) as sandbox:
        run, sandbox_cpu_s = schwab_scan(sandbox, rate, symbols, concurrency)
    print(
        f"unpaced (R = {rate}, no budget reached): {run.symbols_per_s:.1f} symbols/s, "
        f"requests {run.scan['requests'] / run.fan_out_s:.1f}/s, success {run.success:.4%}, "
        f"run process CPU {run.cpu_s:.1f} s, the sandbox's {sandbox_cpu_s:.1f} s"
    )
    return run.symbols_per_s


def requests_per_chain(symbols: list[str]) -> dict[str, float]:
    """HTTP requests one scan chain (the wheel window) costs each POOL_BUDGETS client, on a
    fault-free sandbox in this process: Schwab and Polygon answer in one, Yahoo in one per
    expiration. Signing in (Schwab's token, Yahoo's cookie and crumb) is left out: a run does
    it once."""
    with start_in_process(as_of=SESSION_CLOSE) as sandbox:
        return asyncio.run(_count_requests(sandbox, symbols))


async def _count_requests(sandbox: Sandbox, symbols: list[str]) -> dict[str, float]:
    window = WheelSettings().request_window(SESSION_CLOSE.date())
    sources, skipped = registry.build_sources(
        list(POOL_BUDGETS), sandbox.settings(), "chain", lambda: None
    )
    if skipped:
        raise SystemExit(f"the sandbox cannot serve every pooled provider: {skipped}")
    per_chain: dict[str, float] = {}
    for source in sources:
        await source.option_chain(symbols[0], SESSION_CLOSE, window)  # signs in
        sandbox.stats.reset()
        for symbol in symbols:
            await source.option_chain(symbol, SESSION_CLOSE, window)
        per_chain[source.name] = sandbox.stats.count(source.name) / len(symbols)
        await source.aclose()
    return per_chain


def provider_budget(name: str, per_chain: float) -> dict[str, float]:
    """`name`'s budget in HTTP requests and in chains, and the symbols/s it can serve at most:
    chains/s x the chance that none of a chain's requests is faulted."""
    chains_per_min = POOL_BUDGETS[name] / per_chain
    chain_ok = (1 - FAULT_FRACTION) ** per_chain
    return {
        "requests_per_min": POOL_BUDGETS[name],
        "requests_per_chain": round(per_chain, 3),
        "chains_per_min": round(chains_per_min, 2),
        "chain_fault_fraction": round(1 - chain_ok, 3),
        "ceiling_symbols_per_s": round(chains_per_min / 60 * chain_ok, 3),
    }


def pooled_scan(symbols: list[str], concurrency: int, faults: str) -> dict:
    """The scan over every POOL_BUDGETS provider at once, each held to its budget."""
    sample = symbols[:PER_CHAIN_SAMPLE]
    budgets = {name: provider_budget(name, n) for name, n in requests_per_chain(sample).items()}
    client_limits = ",".join(f"{n}={b['requests_per_min']}/60:1" for n, b in budgets.items())
    with common.workdir("pooled") as work:
        sandbox, settings = start_sandbox(
            work, {n: f"{b}/60" for n, b in POOL_BUDGETS.items()}, faults
        )
        try:
            run = run_scan(
                work,
                symbols,
                concurrency,
                VOLARIS_CHAIN_PROVIDERS=",".join(POOL_BUDGETS),
                VOLARIS_CHAIN_MODE="pool",
                VOLARIS_RATE_LIMITS=client_limits,
                **settings,
            )
        finally:
            common.stop_group(sandbox)

    served = run.scan["served_by"]
    if not all(served.get(name) for name in POOL_BUDGETS):
        raise SystemExit(
            f"symbols served by {served}: a provider served none, so the pool was not in "
            "effect (is VOLARIS_CHAIN_MODE bound?) or that provider's circuit stayed open"
        )
    ceiling = sum(b["ceiling_symbols_per_s"] for b in budgets.values())
    per_s = run.symbols_per_s
    print(f"pooled wheel_premiums over {run.scan['symbols']} symbols, client {client_limits}")
    for name, budget in budgets.items():
        budget["symbols"] = served[name]
        budget["symbols_per_s"] = round(served[name] / run.fan_out_s, 3)
        print(f"  {name}: {budget}")
    print(
        f"  wall {run.wall_s:.1f} s (command), fan-out {run.fan_out_s:.1f} s: {per_s:.2f} "
        f"symbols/s = {per_s / ceiling:.3f} of the ceiling {ceiling:.2f}/s; success "
        f"{run.success:.4%}, failed {run.scan['failed_by_category']}, done after "
        f"{run.scan['done_after_s']}"
    )
    return {
        "symbols": run.scan["symbols"],
        "providers": budgets,
        "client_rate_limits": client_limits,
        "pooled_symbols_per_s": round(per_s, 3),
        "pooled_ceiling": round(ceiling, 3),
        "pooled_over_ceiling": round(per_s / ceiling, 3),
        "wall_s": round(run.wall_s, 2),
        "fan_out_s": round(run.fan_out_s, 2),
        "success_rate": round(run.success, 5),
        "failed_by_category": run.scan["failed_by_category"],
        "requests": run.scan["requests"],
        "done_after_s": run.scan["done_after_s"],
        "peak_rss_mb": run.meta.get("peak_rss_mb"),
        "loop_lag_max_s": run.meta.get("loop_lag_max_s"),
        "command": f"VOLARIS_CHAIN_MODE=pool {run.command}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 symbols at R = 20")
    parser.add_argument("--symbols", type=int, default=1205)
    parser.add_argument(
        "--rates", default="10,100", help="values of R, requests/s (client and sandbox)"
    )
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seed-subset", type=int, default=100)
    parser.add_argument(
        "--pooled", action="store_true", help="Schwab, Polygon and Yahoo at once (POOL_BUDGETS)"
    )
    parser.add_argument(
        "--retry-after",
        default="window",
        help="what an injected 429 advises: window (its wait, 0 with room) or seconds",
    )
    args = parser.parse_args()
    if args.quick:
        args.symbols, args.seed_subset, args.rates = 300, 30, "20"
    symbols = common.universe(args.symbols)
    faults = f"{FAULTS},retry_after_s={args.retry_after}"
    record = {"quick": args.quick, "concurrency": args.concurrency, "faults": faults}
    if args.pooled:
        print(f"faults: {faults}; budgets (HTTP requests/min): {POOL_BUDGETS}")
        common.emit(
            {"benchmark": "scan_pooled", **record, **pooled_scan(symbols, args.concurrency, faults)}
        )
        return
    print(f"faults: {faults}; client budget VOLARIS_RATE_LIMITS=schwab=R/1:1")
    runs = [
        scan_at(int(rate), symbols, args.concurrency, args.seed_subset, faults)
        for rate in args.rates.split(",")
    ]
    unpaced = unpaced_symbols_per_s(symbols, args.concurrency, faults)
    for run in runs:
        run["symbols_per_s_over_unpaced"] = round(run["symbols_per_s"] / unpaced, 3)
        print(
            f"R = {run['rate_limit_per_s']}: {run['symbols_per_s_over_unpaced']:.3f} of the "
            f"unpaced pace, {run['symbols_per_s_over_ceiling']:.3f} of R's ceiling"
        )
    common.emit(
        {
            "benchmark": "scan",
            **record,
            "runs": runs,
            "unpaced_symbols_per_s": round(unpaced, 2),
            "goal_over_r": 0.9,
            "goal_success": 0.999,
        }
    )


if __name__ == "__main__":
    main()
