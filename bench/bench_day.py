"""A trading day on real limits: every schedule and sensor of the small box, in real time.

    python -m bench.bench_day [--minutes 60] [--intraday alpaca] [--chains schwab] [--start HH:MM]

What runs: the small-box deployment (`volaris-daemon`, deploy/small-box/dagster.yaml: one run at
a time, Dagster storage in SQLite) with every shipped schedule and sensor at its shipped cadence,
a PostgreSQL warehouse (a fresh database on VOLARIS_TEST_DATABASE_URL's server, which also holds
the shared provider budget), and the sandbox enforcing one sliding window per provider account
at the published limits (WINDOWS: Schwab 120 requests/min across all its endpoints, Alpaca's
free 200/min), with 50-150 ms latency and no injected faults, so that every 429 it sends is an
overrun of a window. The universe is the shipped default, materialized first.

No time compression: Dagster's schedules tick on the wall clock, and a compressed clock would
compress the providers' windows with it, which is the one thing this measures. While the NYSE
is shut the benchmark replays the latest session instead, on every process's clock moved back
by a constant (clock_shift.py: libfaketime); the sandbox's market clock follows that clock
(moved every minute). `--start 09:20` replays from that time (ET) of the latest session instead,
on the moved clock whatever the hour, so that the open or the close (and the after-close jobs)
can be replayed too. Every `--inject-every` minutes (12) a price cross is injected
(day_alerts.py) and the alert's arrival at a loopback Discord webhook timed.

Reported (one JSON line): `market_minutes`; `runs` and `runs_failed` (every run, schedules and
sensors alike) and `runs_unfinished`, the jobs still running when the replay ended (neither
failed nor done: the 16:45 wheel scan, in a replay that ends at 16:53); `late_ticks`, scheduled
runs that had not finished when their schedule's next tick came (by the schedule's own ticks,
skipped ones included: a tick skipped because the previous run is still in flight is that run's
lateness), by job in `late_ticks_by_job`; `alert_latency_s`, the
slowest injected cross to reach Discord, each one's in `alert_latencies_s`, and `alerts_missed`,
the crosses never alerted; `overrun_429s`, 429s a window issued; `max_rate_over_limit`, the busiest
10 s any provider saw over its limit for 10 s; `peak_rss_mb`, daemon and runs summed at each 0.5 s
sample, and `peak_pss_mb`, the same summed as PSS (a page the daemon and a run share counted once:
what the box really held), with `jobs_at_peak` (the runs executing then) and
`peak_rss_mb_by_job` (each job's highest `peak_rss_mb` metadata: its process's high-water mark).
Baseline in the same run: the demand the shipped cadences put on each
account (requests/min at the universe's size) over its limit, `demand_over_limit`, at one request
per symbol (the fan-out before multi-symbol bars); beside it what the day drew, `drawn_over_limit`
(requests/min over the limit). Goals: 0 overruns, 0 late ticks, rate ≤ 1.0, ≤ 400 MB, an alert
within 90 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from collections import Counter
from datetime import UTC, datetime
from datetime import time as time_of_day

import dagster as dg

from bench import clock_shift, common, day_alerts
from bench.bench_db_restart import fresh_databases, scalar
from bench.bench_footprint import SMALL_BOX, name_new
from volaris_assets import calendar
from volaris_assets.sandbox.limits import RateLimit
from volaris_assets.sandbox.server import start_sandbox
from volaris_assets_tests.webhook_receiver import WebhookReceiver

# Each provider account's published window (provider-notes.md; Schwab's is TD Ameritrade's).
WINDOWS = {"schwab": RateLimit(120, 60.0), "alpaca": RateLimit(200, 60.0)}
DATABASE = "volaris_bench_day"
SERVER = os.environ.get("VOLARIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEDULE_TAG = "dagster/schedule_name"
TICK_S = 60.0
ALERT_BAR_S = 90.0
# How often new processes (run workers) are named, while their command lines can be read.
NAME_EVERY_S = 2.0


def minutes_left_in_session(now: datetime) -> float:
    """Market minutes from `now` to the close, 0 when the NYSE is closed."""
    session = calendar.session_at(now)
    return max((session.close - now).total_seconds() / 60, 0.0) if session else 0.0


def demand_per_minute(symbols: int) -> dict[str, float]:
    """What the shipped cadences ask of each capability, in requests per minute, at one request
    per symbol per run (intraday every 5 minutes, chains every 15): the baseline that batching
    intraday bars and the quotes' batches are measured against."""
    return {"intraday": symbols / 5, "chains": symbols / 15}


def run_records(home: str, since: float) -> list[dg.RunRecord]:
    """The runs created since `since` (epoch s): the day's, not the universe set-up's."""
    with dg.DagsterInstance.from_config(home) as instance:
        return [
            record
            for record in instance.get_run_records()
            if record.create_timestamp.timestamp() >= since
        ]


def late_ticks(home: str, records: list[dg.RunRecord], since: float, ended: float) -> Counter[str]:
    """Scheduled runs that had not finished when their schedule's next tick came, by job: which
    schedule ran late tells whether the slot or the budget held it back."""
    by_id = {record.dagster_run.run_id: record for record in records}
    late: Counter[str] = Counter()
    with dg.DagsterInstance.from_config(home) as instance:
        for state in instance.all_instigator_state():
            if state.instigator_type.value != "SCHEDULE":
                continue
            ticks = sorted(
                instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since),
                key=lambda tick: tick.timestamp,
            )
            for tick, next_tick in zip(ticks, ticks[1:], strict=False):
                for run_id in tick.run_ids:
                    record = by_id.get(run_id)
                    if record is not None:
                        finished = record.end_time if record.end_time is not None else ended
                        if finished > next_tick.timestamp:
                            late[record.dagster_run.job_name] += 1
    return late


def replay(
    minutes: float, providers: dict[str, str], inject_every: int, start: time_of_day | None
) -> dict[str, object]:
    now = datetime.now(UTC)
    if start is not None:
        if not clock_shift.shift_s():
            clock_shift.rerun_in_session(now, minutes + 3, at=start)
    elif minutes_left_in_session(now) < minutes + 2:
        if clock_shift.shift_s():
            raise SystemExit(f"the shifted clock ({now:%Y-%m-%d %H:%M}) is not in a session")
        clock_shift.rerun_in_session(now, minutes + 3)
    sandbox = start_sandbox(faults="latency_ms=50-150", rate_limits=WINDOWS, as_of=now)
    receiver = WebhookReceiver().start()
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
                DISCORD_WEBHOOK_URL=receiver.webhook_url(),
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
            figures = observe(work, env, sandbox, minutes, url, receiver, inject_every)
    finally:
        context.__exit__(None, None, None)
        sandbox.stop()
        receiver.stop()
    limits = {name: window.requests / window.per_s * 60 for name, window in WINDOWS.items()}
    demand = demand_per_minute(symbols)
    by_account: dict[str, float] = {}
    for capability, per_minute in demand.items():
        account = providers[capability]
        by_account[account] = by_account.get(account, 0.0) + per_minute
    return {
        **figures,
        "clock_shift_s": clock_shift.shift_s(),
        "symbols": symbols,
        "providers": providers,
        "limits_per_min": limits,
        "demand_over_limit": {
            account: round(per_minute / limits[account], 3)
            for account, per_minute in by_account.items()
            if account in limits
        },
        "drawn_over_limit": {
            account: round(count / figures["market_minutes"] / limits[account], 3)
            for account, count in figures["requests"].items()
            if figures["market_minutes"]
        },
    }


def observe(
    work,
    env: dict[str, str],
    sandbox,
    minutes: float,
    url: str,
    receiver: WebhookReceiver,
    inject_every: int,
) -> dict[str, object]:
    """Run the daemon for `minutes`, moving the sandbox's market clock along and injecting a
    price cross every `--inject-every` minutes (12), and measure."""
    daemon = common.start_group(
        [common.PYTHON, "-m", "volaris_assets.small_box.daemon"], env, work / "daemon.log"
    )
    home = str(work / "home")
    roles: dict[int, str] = {}
    started = time.time()
    next_minute = started + TICK_S
    crosses: list[day_alerts.Cross] = []
    used: set[str] = set()
    try:
        with common.RssSampler([daemon.pid], interval_s=0.5, track_pss=True) as sampler:
            while (now := time.time()) - started < minutes * 60:
                time.sleep(NAME_EVERY_S)
                if sampler.samples:
                    name_new(roles, sampler.samples[-1][2])
                if now >= next_minute:
                    next_minute += TICK_S
                    minute = round((now - started) / TICK_S)
                    if minute % inject_every == 0 and minutes * 60 - (now - started) > 180:
                        cross = day_alerts.inject(sandbox, url, datetime.now(UTC), used)
                        crosses += [cross] if cross else []
                    else:
                        sandbox.set_as_of(datetime.now(UTC))
                    progress(now - started, run_records(home, started), sandbox, sampler)
    finally:
        common.stop_group(daemon)
    ended = time.time()
    records = run_records(home, started)
    alert_latencies = day_alerts.latencies(crosses, receiver)
    late = late_ticks(home, records, started, ended)
    over = {
        provider: sandbox.stats.busiest(provider, 10.0) / (window.requests * 10.0 / window.per_s)
        for provider, window in WINDOWS.items()
    }
    peak_s, peak_total, peak_pids = max(sampler.samples, key=lambda sample: sample[1])
    at_peak: dict[str, float] = {}
    for pid, mb in peak_pids.items():
        name = roles.get(pid, "unnamed")
        at_peak[name] = round(at_peak.get(name, 0.0) + mb, 1)
    return {
        "market_minutes": round((ended - started) / 60, 1),
        "runs": len(records),
        "runs_failed": sum(r.dagster_run.is_failure for r in records),
        "runs_unfinished": sorted(
            r.dagster_run.job_name for r in records if not r.dagster_run.is_finished
        ),
        "runs_by_job": dict(Counter(r.dagster_run.job_name for r in records).most_common()),
        "late_ticks": late.total(),
        "late_ticks_by_job": dict(late),
        "alert_latency_s": max((s for s in alert_latencies if s is not None), default=None),
        "alert_latencies_s": alert_latencies,
        "alerts_missed": alert_latencies.count(None),
        "alerts_injected": [f"{c.symbol} {c.direction} {c.threshold:g}" for c in crosses],
        "overrun_429s": sum(sandbox.stats.window_refusals(p) for p in WINDOWS),
        "requests": {p: sandbox.stats.count(p) for p in WINDOWS},
        "max_rate_over_limit": round(max(over.values()), 3),
        "rate_over_limit_by_provider": {p: round(v, 3) for p, v in over.items()},
        "peak_rss_mb": round(peak_total, 1),
        "peak_pss_mb": round(sampler.pss_peak_mb, 1),
        "peak_by_process_mb": at_peak,
        "jobs_at_peak": in_flight(records, started + peak_s),
        "peak_rss_mb_by_job": peaks_by_job(home, records),
    }


def in_flight(records: list[dg.RunRecord], at: float) -> list[str]:
    """The jobs whose runs were executing at `at` (epoch s): what the peak was made of."""
    return sorted(
        record.dagster_run.job_name
        for record in records
        if record.start_time is not None
        and record.start_time <= at <= (record.end_time or float("inf"))
    )


def peaks_by_job(home: str, records: list[dg.RunRecord]) -> dict[str, float]:
    """Each job's highest `peak_rss_mb` materialization metadata: the high-water mark of the
    process that ran it (a run worker; the daemon itself for a light-lane job)."""
    peaks: dict[str, float] = {}
    with dg.DagsterInstance.from_config(home) as instance:
        for record in records:
            job = record.dagster_run.job_name
            for entry in instance.all_logs(
                record.dagster_run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ):
                value = entry.asset_materialization.metadata.get("peak_rss_mb")
                if value is not None:
                    peaks[job] = round(max(peaks.get(job, 0.0), float(value.value)), 1)
    return peaks


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
    parser.add_argument(
        "--inject-every", type=int, default=12, help="minutes between injected price crosses"
    )
    parser.add_argument(
        "--start",
        type=time_of_day.fromisoformat,
        help="replay from this time (ET, HH:MM) of the latest session (default: the latest "
        "stretch of `--minutes` that ends by the close)",
    )
    args = parser.parse_args()
    providers = {"chains": args.chains, "intraday": args.intraday, "daily": args.daily}
    figures = replay(args.minutes, providers, args.inject_every, args.start)
    common.emit(
        {
            "benchmark": "day",
            **figures,
            "goal": {
                "overrun_429s": 0,
                "late_ticks": 0,
                "max_rate_over_limit": 1.0,
                "peak_rss_mb": 400,
                "alert_latency_s": ALERT_BAR_S,
            },
        }
    )


if __name__ == "__main__":
    main()
