"""How long a run's event loop is held up while Alpaca's batched bars are fetched and parsed,
this tree against a git revision.

    python -m bench.bench_loop_lag [--baseline-rev HEAD] [--calls 6] [--pairs 2]

Why: every request's timeout, hedge delay and budget turn is a timer on that one loop
(`ingest/loop_lag.py`), and the intraday run's 100-symbol `bars_many` answer is the largest
payload any client parses: one session of 1-minute bars is ~39,000 rows. A heartbeat every
5 ms runs beside `AlpacaClient.bars_many` for 100 symbols and the session of 2026-11-24,
`--calls` times; the sandbox serves them from a process of its own, as a provider would, so
only the client's work shares the probe's interpreter. Each package's probe runs in a fresh
interpreter, in pairs that alternate between them. Reported: the heartbeat's largest delay and
its 90th percentile (ms) and the calls' median time (s), each the median over the pairs, and
the ratios this tree / baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from bench import common
from bench.bench_scan import SESSION_CLOSE
from volaris_assets.sandbox.server import DEFAULT_KEYS

_PROBE = """
import asyncio, json, statistics, sys, time
from datetime import datetime
from volaris_assets.providers.alpaca import AlpacaClient

base, calls, start, end = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
key_id, secret = sys.argv[5], sys.argv[6]
symbols = sys.argv[7].split(",")
start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)

async def main():
    lags, done = [], False

    async def beat():
        while not done:
            due = time.perf_counter() + 0.005
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - due)

    client = AlpacaClient(api_key=key_id, api_secret=secret, base_url=base)
    await client.bars_many(symbols, "1m", start, end)  # warm: the sandbox renders the bars
    heart = asyncio.create_task(beat())
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        frame = await client.bars_many(symbols, "1m", start, end)
        took.append(time.perf_counter() - began)
    done = True
    await heart
    await client.aclose()
    lags.sort()
    print(json.dumps({
        "max_ms": 1000 * lags[-1],
        "p90_ms": 1000 * lags[int(0.9 * (len(lags) - 1))],
        "call_s": statistics.median(took),
        "rows": len(frame),
    }))

asyncio.run(main())
"""
SESSION_OPEN = SESSION_CLOSE.replace(hour=14, minute=30)  # 09:30 in New York in November
BATCH = 100


def measure(package_root: Path, base: str, symbols: list[str], calls: int) -> dict[str, float]:
    """One probe's figures, in a fresh interpreter importing `package_root`."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "DAGSTER_DISABLE_TELEMETRY": "1"}
    keys = DEFAULT_KEYS["alpaca"]
    args = [
        base,
        str(calls),
        SESSION_OPEN.isoformat(),
        SESSION_CLOSE.isoformat(),
        keys["key_id"],
        keys["secret"],
        ",".join(symbols),
    ]
    return json.loads(common.run_probe(_PROBE, args, env, package_root, "loop lag"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="HEAD")
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()

    symbols = common.universe(BATCH)
    with common.workdir("loop-lag") as work:
        port = common.free_port()
        command = [common.PYTHON, "-m", "volaris_assets.sandbox", "--port", str(port)]
        sandbox = common.start_group(
            [*command, "--faults", "none", "--as-of", SESSION_CLOSE.isoformat()],
            common.run_env(work),
            work / "sandbox.log",
        )
        try:
            common.wait_for_port(port)
            base = f"http://127.0.0.1:{port}/alpaca"
            baseline_root = common.package_at(args.baseline_rev, work)
            runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
            for _ in range(args.pairs):
                runs["baseline"].append(measure(baseline_root, base, symbols, args.calls))
                runs["current"].append(measure(common.ROOT, base, symbols, args.calls))
        finally:
            common.stop_group(sandbox)

    summary = {
        name: {
            key: round(statistics.median(run[key] for run in figures), 3)
            for key in ("max_ms", "p90_ms", "call_s")
        }
        for name, figures in runs.items()
    }
    rows = int(runs["current"][0]["rows"])
    print(f"event loop beside bars_many({BATCH} symbols, 1m, one session: {rows} rows)")
    for name, label in (("baseline", args.baseline_rev), ("current", "this tree")):
        figures = summary[name]
        print(
            f"  {label}: max lag {figures['max_ms']:.0f} ms, p90 {figures['p90_ms']:.1f} ms, "
            f"call {figures['call_s']:.3f} s"
        )
    ratios = {
        f"{key}_ratio": round(summary["current"][key] / summary["baseline"][key], 3)
        for key in ("max_ms", "p90_ms", "call_s")
    }
    common.emit(
        {
            "bench": "loop_lag",
            "baseline_rev": args.baseline_rev,
            "rows": rows,
            "calls": args.calls,
            "pairs": args.pairs,
            "baseline": summary["baseline"],
            "current": summary["current"],
            **ratios,
        }
    )


if __name__ == "__main__":
    main()
