"""How long a run's event loop is held up while a provider's largest answers are parsed, this
tree against a git revision.

    python -m bench.bench_loop_lag [--case alpaca|databento] [--baseline-rev HEAD] [--calls 6]
                                   [--pairs 2]

Why: every request's timeout, hedge delay and budget turn is a timer on that one loop
(`ingest/loop_lag.py`). A heartbeat every 5 ms runs beside `--calls` calls of the case's client
method; each package's probe runs in a fresh interpreter, in pairs that alternate between
them. Reported: the heartbeat's largest delay and its 90th percentile (ms), the calls' median
time (s) and how far the probe's peak RSS rose over the calls (MB), each the median over the
pairs, and the ratios this tree / baseline.

Cases:
- `alpaca` (the default): `AlpacaClient.bars_many` for 100 symbols and the session of
  2026-11-24, the intraday run's batch and the largest payload a polling run parses (one
  session of 1-minute bars, ~39,000 rows). The sandbox serves it from a process of its own, as
  a provider would, so only the client's work shares the probe's interpreter.
- `databento`: `DatabentoClient.session_close_chain` for SPY, a history backfill's largest
  answer: 10,000 contracts (SPY's chain is of that order), each a `definition` record padded
  to the 67 fields of a real OPRA definition (~20 MB of JSON lines) and a `cbbo-1m` record.
  The sandbox's simulated chains are a few hundred contracts, so a small HTTP server in a
  process of its own serves these answers, written beforehand, over loopback.
  Both packages read it under a 64 MB cap (Databento's own since 2026-12-07; the 12 MB
  default before it refused this answer outright).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from datetime import UTC, date, datetime, time
from pathlib import Path

from bench import common
from bench.bench_scan import SESSION, SESSION_CLOSE
from volaris_assets.sandbox.server import DEFAULT_KEYS

_HEARTBEAT = """
import asyncio, json, resource, statistics, sys, time

def rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize() / 2**20

async def measure(call, calls):
    lags, done = [], False

    async def beat():
        while not done:  # a beat due while the calls ran is counted after them
            due = time.perf_counter() + 0.005
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - due)

    await call()  # warm
    before = rss_mb()
    heart = asyncio.create_task(beat())
    await asyncio.sleep(0)  # the first beat is due before the first call
    took = []
    for _ in range(calls):
        began = time.perf_counter()
        result = await call()
        took.append(time.perf_counter() - began)
    done = True
    await heart
    lags.sort()
    print(json.dumps({
        "max_ms": 1000 * lags[-1],
        "p90_ms": 1000 * lags[int(0.9 * (len(lags) - 1))],
        "call_s": statistics.median(took),
        "rss_rise_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before,
        "rows": len(result),
    }))
"""
_PROBES = {
    "alpaca": _HEARTBEAT
    + """
from datetime import datetime
from volaris_assets.providers.alpaca import AlpacaClient

base, calls, start, end = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
key_id, secret, symbols = sys.argv[5], sys.argv[6], sys.argv[7].split(",")
start, end = datetime.fromisoformat(start), datetime.fromisoformat(end)

async def main():
    client = AlpacaClient(api_key=key_id, api_secret=secret, base_url=base)
    await measure(lambda: client.bars_many(symbols, "1m", start, end), calls)
    await client.aclose()

asyncio.run(main())
""",
    "databento": _HEARTBEAT
    + """
from datetime import date
from volaris_assets.providers.databento import DatabentoClient

base, calls, day = sys.argv[1], int(sys.argv[2]), date.fromisoformat(sys.argv[3])

async def main():
    client = DatabentoClient(api_key="bench", base_url=base)
    client.max_response_bytes = 64 * 2**20  # what this tree gives Databento; 12 MB before
    await measure(lambda: client.session_close_chain("SPY", day), calls)
    await client.aclose()

asyncio.run(main())
""",
}
# Serves `<dir>/<schema>.jsonl` for each `timeseries.get_range` POST, whatever else it asks.
_BODY_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

port, folder = int(sys.argv[1]), Path(sys.argv[2])
bodies = {path.stem: path.read_bytes() for path in folder.glob("*.jsonl")}

class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
        body = bodies[form["schema"][0]]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""
SESSION_OPEN = SESSION_CLOSE.replace(hour=14, minute=30)  # 09:30 in New York in November
BATCH = 100
CONTRACTS = 10_000
FIGURES = ("max_ms", "p90_ms", "call_s", "rss_rise_mb")


def write_chain_bodies(folder: Path, contracts: int) -> int:
    """SPY's answers for one session, as Databento's JSON lines: a `definition` record padded
    to the 67 fields of a real one and a `cbbo-1m` record per contract, and the daily bar;
    the definitions' size in bytes."""
    midnight = int(datetime.combine(date.fromisoformat(SESSION), time(), UTC).timestamp()) * 10**9
    padding = {f"field_{n}": str(n * 1234567) for n in range(55)}

    def definition(n: int) -> dict:
        right = "CP"[n % 2]
        return {
            "ts_recv": str(midnight),
            "hd": {"ts_event": str(midnight), "rtype": 19, "publisher_id": 2, "instrument_id": n},
            "raw_symbol": f"SPY   261218{right}{n:08d}",
            "security_update_action": "A",
            "instrument_class": right,
            "strike_price": str((300 + n % 400) * 10**9),
            "expiration": str(midnight + (2 + n % 40) * 86_400 * 10**9 + 21 * 3600 * 10**9),
            "underlying": "SPY",
            "exchange": "OPRA",
            **padding,
            "symbol": f"SPY   261218{right}{n:08d}",
        }

    def quote(n: int) -> dict:
        top = {"bid_px": "1000000000", "ask_px": "1100000000", "bid_sz": 10, "ask_sz": 10}
        return {
            "ts_recv": str(midnight),
            "hd": {"ts_event": str(midnight), "rtype": 196, "publisher_id": 2, "instrument_id": n},
            "price": "1000000000",
            "size": 1,
            "side": "N",
            "flags": 0,
            "levels": [{**top, "bid_pb": 2, "ask_pb": 2}],
        }

    bar = {
        "hd": {"ts_event": str(midnight), "rtype": 35, "publisher_id": 2, "instrument_id": 1},
        **{field: "500000000000" for field in ("open", "high", "low", "close")},
        "volume": "1000",
        "symbol": "SPY",
    }
    lines = {
        "definition": (definition(n) for n in range(contracts)),
        "cbbo-1m": (quote(n) for n in range(contracts)),
        "ohlcv-1d": iter([bar]),
    }
    for schema, records in lines.items():
        (folder / f"{schema}.jsonl").write_text("\n".join(json.dumps(r) for r in records))
    return (folder / "definition.jsonl").stat().st_size


def measure(case: str, package_root: Path, args: list[str]) -> dict[str, float]:
    """One probe's figures, in a fresh interpreter importing `package_root`."""
    env = {**os.environ, "PYTHONPATH": str(package_root), "DAGSTER_DISABLE_TELEMETRY": "1"}
    return json.loads(common.run_probe(_PROBES[case], args, env, package_root, "loop lag"))


def alpaca_args(base: str, calls: int) -> list[str]:
    keys = DEFAULT_KEYS["alpaca"]
    return [
        base,
        str(calls),
        SESSION_OPEN.isoformat(),
        SESSION_CLOSE.isoformat(),
        keys["key_id"],
        keys["secret"],
        ",".join(common.universe(BATCH)),
    ]


def compare(case: str, args: argparse.Namespace, probe_args: list[str], work: Path) -> dict:
    """Each package's figures over `args.pairs` alternating pairs of probes."""
    baseline_root = common.package_at(args.baseline_rev, work)
    runs: dict[str, list[dict[str, float]]] = {"baseline": [], "current": []}
    for _ in range(args.pairs):
        runs["baseline"].append(measure(case, baseline_root, probe_args))
        runs["current"].append(measure(case, common.ROOT, probe_args))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=sorted(_PROBES), default="alpaca")
    parser.add_argument("--baseline-rev", default="HEAD")
    parser.add_argument("--calls", type=int, default=6)
    parser.add_argument("--pairs", type=int, default=2)
    args = parser.parse_args()

    with common.workdir("loop-lag") as work:
        port = common.free_port()
        if args.case == "databento":
            size_mb = write_chain_bodies(work, CONTRACTS) / 2**20
            what = f"session_close_chain(SPY: {CONTRACTS} contracts, {size_mb:.1f} MB)"
            command = [common.PYTHON, "-c", _BODY_SERVER, str(port), str(work)]
            probe_args = [f"http://127.0.0.1:{port}", str(args.calls), SESSION]
        else:
            what = f"bars_many({BATCH} symbols, 1m, one session)"
            command = [common.PYTHON, "-m", "volaris_assets.sandbox", "--port", str(port)]
            command += ["--faults", "none", "--as-of", SESSION_CLOSE.isoformat()]
            probe_args = alpaca_args(f"http://127.0.0.1:{port}/alpaca", args.calls)
        server = common.start_group(command, common.run_env(work), work / "server.log")
        try:
            common.wait_for_port(port)
            runs = compare(args.case, args, probe_args, work)
        finally:
            common.stop_group(server)

    summary = {
        name: {key: round(statistics.median(run[key] for run in figures), 3) for key in FIGURES}
        for name, figures in runs.items()
    }
    rows = int(runs["current"][0]["rows"])
    print(f"event loop beside {what}: {rows} rows")
    for name, label in (("baseline", args.baseline_rev), ("current", "this tree")):
        figures = summary[name]
        print(
            f"  {label}: max lag {figures['max_ms']:.0f} ms, p90 {figures['p90_ms']:.1f} ms, "
            f"call {figures['call_s']:.3f} s, peak RSS +{figures['rss_rise_mb']:.1f} MB"
        )
    ratios = {
        f"{key}_ratio": round(summary["current"][key] / summary["baseline"][key], 3)
        for key in FIGURES
        if summary["baseline"][key]
    }
    common.emit(
        {
            "bench": "loop_lag",
            "case": args.case,
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
