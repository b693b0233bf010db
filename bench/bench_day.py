"""A trading day on real limits: every schedule and sensor of the small box, in real time.

    python -m bench.bench_day [--minutes 60] [--intraday alpaca] [--chains schwab]

What runs: the small-box deployment (`volaris-daemon`, deploy/small-box/dagster.yaml: one run at
a time, Dagster storage in SQLite) with every shipped schedule and sensor at its shipped cadence,
a PostgreSQL warehouse (a fresh database on VOLARIS_TEST_DATABASE_URL's server, which also holds
the shared provider budget), and the sandbox enforcing one sliding window per provider account
at the published limits (WINDOWS: Schwab 120 requests/min across all its endpoints, Alpaca's
free 200/min), with 50-150 ms latency and no injected faults, so that every 429 it sends is an
overrun of a window. The universe is the shipped default, materialized first.

No time compression: Dagster's schedules tick on the wall clock, and a compressed clock would
compress the providers' windows with it, which is the one thing this measures. So the
benchmark runs while the NYSE is open and says when it next will be otherwise; the sandbox's
market clock follows the wall clock (moved every minute).

Reported (one JSON line): `market_minutes`; `runs` and `runs_failed` (every run, schedules and
sensors alike); `late_ticks`, scheduled runs that had not finished when their schedule's next
tick came (the next run's creation, or for the last one its median spacing); `overrun_429s`,
429s a window issued; `max_rate_over_limit`, the busiest 10 s any provider saw over its limit
for 10 s; `peak_rss_mb`, daemon and runs summed at each 0.5 s sample. Baseline in the same run:
the demand the shipped cadences put on each account (requests/min at the universe's size) over
its limit, `demand_over_limit`. Goals: 0 overruns, 0 late ticks, rate ≤ 1.0, ≤ 400 MB.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import dagster as dg

from bench import common
from bench.bench_db_restart import fresh_databases, scalar
from bench.bench_footprint import SMALL_BOX, name_new
from volaris_assets import calendar
from volaris_assets.sandbox.limits import RateLimit
from volaris_assets.sandbox.server import start_sandbox

# Each provider account's published window (provider-notes.md; Schwab's is TD Ameritrade's).
WINDOWS = {"schwab": RateLimit(120, 60.0), "alpaca": RateLimit(200, 60.0)}
DATABASE = "volaris_bench_day"
SERVER = os.environ.get("VOLARIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEDULE_TAG = "dagster/schedule_name"
TICK_S = 60.0
# How often new processes (run workers) are named, while their command lines can be read.
NAME_EVERY_S = 2.0


def minutes_left_in_session(now: datetime) -> float:
    """Market minutes from `now` to the close, 0 when the NYSE is closed."""
    session = calendar.session_at(now)
    return max((session.close - now).total_seconds() / 60, 0.0) if session else 0.0


def next_open(now: datetime) -> datetime:
    """When the next session opens (for the message of a run started with the market shut)."""
    day = now.astimezone(calendar.NY).date()
    while not calendar.is_session(day) or calendar.session(day).open <= now:
        day += timedelta(days=1)
    return calendar.session(day).open


def demand_per_minute(symbols: int) -> dict[str, float]:
    """What the shipped cadences ask of each capability, in requests per minute: one request
    per symbol per run (intraday every 5 minutes, chains every 15)."""
    return {"intraday": symbols / 5, "chains": symbols / 15}


def run_records(home: str, since: float) -> list[dg.RunRecord]:
    """The runs created since `since` (epoch s): the day's, not the universe set-up's."""
    with dg.DagsterInstance.from_config(home) as instance:
        return [
            record
            for record in instance.get_run_records()
            if record.create_timestamp.timestamp() >= since
        ]


def late_ticks(records: list[dg.RunRecord], ended: float) -> int:
    """Scheduled runs still unfinished when their schedule ticked again."""
    late = 0
    by_schedule: dict[str, list[dg.RunRecord]] = {}
    for record in records:
        name = record.dagster_run.tags.get(SCHEDULE_TAG)
        if name:
            by_schedule.setdefault(name, []).append(record)
    for runs in by_schedule.values():
        runs.sort(key=lambda r: r.create_timestamp)
        created = [r.create_timestamp.timestamp() for r in runs]
        gaps = [b - a for a, b in zip(created, created[1:], strict=False)]
        spacing = statistics.median(gaps) if gaps else None
        for index, record in enumerate(runs):
            finished = record.end_time if record.end_time is not None else ended
            if index + 1 < len(runs):
                next_tick = created[index + 1]
            elif spacing is not None:
                next_tick = created[index] + spacing
            else:
                continue
            late += finished > next_tick
    return late


def replay(minutes: float, providers: dict[str, str]) -> dict[str, object]:
    now = datetime.now(UTC)
    left = minutes_left_in_session(now)
    if left < minutes + 2:
        raise SystemExit(
            f"bench_day runs in real time while the NYSE is open, for {minutes:.0f} minutes "
            f"before the close; {left:.0f} remain now. Next open: {next_open(now).isoformat()}."
        )
    sandbox = start_sandbox(faults="latency_ms=50-150", rate_limits=WINDOWS, as_of=now)
    context = common.workdir("day")
    work = context.__enter__()
    try:
        with fresh_databases(SERVER, (DATABASE,)) as (url,):
            env = common.run_env(
                work,
                DATABASE_URL=url,
                VOLARIS_CHAIN_PROVIDERS=providers["chains"],
                VOLARIS_INTRADAY_PROVIDERS=providers["intraday"],
                VOLARIS_DAILY_PROVIDERS=providers["daily"],
                **sandbox.settings(),
            )
            universe_log = work / "universe.log"
            code, _, _ = common.run_sampled(
                common.dagster_materialize("sp500_constituents,scan_universe"), env, universe_log
            )
            common.check(code, universe_log, "universe")
            symbols = scalar(url, "SELECT count(*) FROM tickers WHERE in_sp500")
            sandbox.stats.reset()
            shutil.copy(SMALL_BOX / "dagster.yaml", work / "home" / "dagster.yaml")
            figures = observe(work, env, sandbox, minutes)
    finally:
        context.__exit__(None, None, None)
        sandbox.stop()
    limits = {name: window.requests / window.per_s * 60 for name, window in WINDOWS.items()}
    demand = demand_per_minute(symbols)
    by_account: dict[str, float] = {}
    for capability, per_minute in demand.items():
        account = providers[capability]
        by_account[account] = by_account.get(account, 0.0) + per_minute
    return {
        **figures,
        "symbols": symbols,
        "providers": providers,
        "limits_per_min": limits,
        "demand_over_limit": {
            account: round(per_minute / limits[account], 3)
            for account, per_minute in by_account.items()
            if account in limits
        },
    }


def observe(work, env: dict[str, str], sandbox, minutes: float) -> dict[str, object]:
    """Run the daemon for `minutes`, moving the sandbox's market clock along, and measure."""
    daemon = common.start_group(
        [common.PYTHON, "-m", "volaris_assets.small_box.daemon"], env, work / "daemon.log"
    )
    home = str(work / "home")
    roles: dict[int, str] = {}
    started = time.time()
    next_minute = started + TICK_S
    try:
        with common.RssSampler([daemon.pid], interval_s=0.5) as sampler:
            while (now := time.time()) - started < minutes * 60:
                time.sleep(NAME_EVERY_S)
                if sampler.samples:
                    name_new(roles, sampler.samples[-1][2])
                if now >= next_minute:
                    next_minute += TICK_S
                    sandbox.set_as_of(datetime.now(UTC))
                    progress(now - started, run_records(home, started), sandbox, sampler)
    finally:
        common.stop_group(daemon)
    ended = time.time()
    records = run_records(home, started)
    over = {
        provider: sandbox.stats.busiest(provider, 10.0) / (window.requests * 10.0 / window.per_s)
        for provider, window in WINDOWS.items()
    }
    _, peak_total, peak_pids = max(sampler.samples, key=lambda sample: sample[1])
    at_peak: dict[str, float] = {}
    for pid, mb in peak_pids.items():
        name = roles.get(pid, "unnamed")
        at_peak[name] = round(at_peak.get(name, 0.0) + mb, 1)
    return {
        "market_minutes": round((ended - started) / 60, 1),
        "runs": len(records),
        "runs_failed": sum(r.dagster_run.is_failure for r in records),
        "runs_by_job": dict(Counter(r.dagster_run.job_name for r in records).most_common()),
        "late_ticks": late_ticks(records, ended),
        "overrun_429s": sum(sandbox.stats.window_refusals(p) for p in WINDOWS),
        "requests": {p: sandbox.stats.count(p) for p in WINDOWS},
        "max_rate_over_limit": round(max(over.values()), 3),
        "rate_over_limit_by_provider": {p: round(v, 3) for p, v in over.items()},
        "peak_rss_mb": round(peak_total, 1),
        "peak_by_process_mb": at_peak,
    }


def progress(elapsed_s: float, records: list[dg.RunRecord], sandbox, sampler) -> None:
    """One line a minute, so that an hour's run is watched rather than waited for."""
    print(
        f"{elapsed_s / 60:5.1f} min: {len(records)} runs, "
        f"{sum(r.dagster_run.is_failure for r in records)} failed, "
        f"{sum(sandbox.stats.window_refusals(p) for p in WINDOWS)} window 429s, "
        f"{sampler.samples[-1][1] if sampler.samples else 0:.0f} MB now, "
        f"{sampler.peak_mb:.0f} MB peak",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="market minutes to run")
    parser.add_argument("--chains", default="schwab", help="VOLARIS_CHAIN_PROVIDERS")
    parser.add_argument("--intraday", default="alpaca", help="VOLARIS_INTRADAY_PROVIDERS")
    parser.add_argument("--daily", default="schwab", help="VOLARIS_DAILY_PROVIDERS")
    args = parser.parse_args()
    providers = {"chains": args.chains, "intraday": args.intraday, "daily": args.daily}
    figures = replay(args.minutes, providers)
    common.emit(
        {
            "benchmark": "day",
            **figures,
            "goal": {
                "overrun_429s": 0,
                "late_ticks": 0,
                "max_rate_over_limit": 1.0,
                "peak_rss_mb": 400,
            },
        }
    )


if __name__ == "__main__":
    main()
