"""Soak: does the small box's long-lived daemon grow while it works?

    python -m bench.bench_soak [--minutes 15] [--every 60] [--symbols 300]

`volaris-daemon` (deploy/small-box) holds the code location, so every schedule tick and sensor
evaluation runs inside the one process that never restarts; a leak there is what would
eventually break a 512 MB box, and a single-run benchmark cannot see it. This keeps the daemon
up for `--minutes`, queues a run every `--every` seconds while its own sensors tick, and samples
the daemon's RSS every 5 s. The runs alternate: a `wheel_scan_job` (the production chain schedule
fires every 15 minutes; this is far denser) and an `intraday_bars_job` over a whole session of
1-minute bars, each time an earlier session so that every one is a full fetch: the heaviest run
a small box makes, which its schedule starts every 5 minutes in market hours.

Baseline, same run: the daemon's RSS once its first run has finished (imports done, caches
warm). Reported: RSS at the end and its ratio to that baseline, the growth per hour (least
squares over the second half of the soak, after warm-up), the peak of daemon + worker with each
process's share, each run worker's own peak by job, and how the runs ended.
"""

from __future__ import annotations

import argparse
import math
import shutil
import time

import dagster as dg

from bench import common
from bench.bench_footprint import JOB, SESSION, SMALL_BOX, launch, name_new, prepared
from volaris_assets import calendar
from volaris_assets.small_box.launcher import PID_TAG

INTRADAY_JOB = "intraday_bars_job"

SAMPLE_S = 5.0


def slope_mb_per_hour(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) in MB/hour."""
    n = len(samples)
    if n < 2:
        return 0.0
    mean_t = sum(t for t, _ in samples) / n
    mean_v = sum(v for _, v in samples) / n
    var = sum((t - mean_t) ** 2 for t, _ in samples)
    cov = sum((t - mean_t) * (v - mean_v) for t, v in samples)
    return cov / var * 3600 if var else 0.0


def launches() -> list[tuple[str, str]]:
    """(job, partition) to queue, in turn: the scan, then a session of 1-minute bars, each time
    an earlier session (the calendar's sessions before SESSION bound how long a soak can be)."""
    sessions = calendar.sessions_between(calendar.FIRST_SESSION, calendar.session_day(SESSION))
    return [
        launch
        for session in reversed(sessions)
        for launch in ((JOB, SESSION), (INTRADAY_JOB, session.day.isoformat()))
    ]


def soak(minutes: float, every_s: float, symbols: list[str]) -> dict[str, object]:
    context, work, env = prepared("soak", symbols)
    try:
        home = work / "home"
        shutil.copy(SMALL_BOX / "dagster.yaml", home / "dagster.yaml")
        daemon = common.start_group(
            [common.PYTHON, "-m", "volaris_assets.small_box.daemon"], env, work / "daemon.log"
        )
        workspace, log = SMALL_BOX / "workspace.yaml", work / "launch.log"
        # (wall-clock time, daemon RSS MB): wall clock, to line up with the runs' end times.
        series: list[tuple[float, float]] = []
        roles: dict[int, str] = {}
        try:
            with common.RssSampler([daemon.pid], interval_s=0.5) as sampler:
                started = time.time()
                next_launch, next_sample = started, started
                queued = iter(launches())
                while (now := time.time()) - started < minutes * 60:
                    if now >= next_launch:
                        job, partition = next(queued)
                        launch(env, workspace, log, job, partition)
                        next_launch += every_s
                    if now >= next_sample:
                        series.append((now, common.rss_mb(daemon.pid) or 0.0))
                        next_sample += SAMPLE_S
                    name_new(roles, sampler.samples[-1][2] if sampler.samples else ())
                    time.sleep(0.5)
            with dg.DagsterInstance.from_config(str(home)) as instance:
                records = instance.get_run_records()
                first_end = min((r.end_time for r in records if r.end_time), default=started)
                statuses = [
                    f"{r.dagster_run.job_name}:{r.dagster_run.status.value}" for r in records
                ]
                for record in records:
                    pid = record.dagster_run.tags.get(PID_TAG)
                    if pid is not None and roles.get(int(pid)) == "run worker":
                        roles[int(pid)] = f"{record.dagster_run.job_name} worker"
        finally:
            common.stop_group(daemon)
    finally:
        context.__exit__(None, None, None)

    warm = [v for t, v in series if t >= first_end] or [v for _, v in series]
    baseline, end = warm[0], series[-1][1]
    second_half = [(t - started, v) for t, v in series if t - started >= minutes * 30]
    _, peak_total, peak_by_pid = max(sampler.samples, key=lambda sample: sample[1])
    peaks = sampler.peak_by_pid()  # in the order the processes were first seen
    worker_peaks = [
        (roles[pid].removesuffix(" worker"), round(mb, 1))
        for pid, mb in peaks.items()
        if roles.get(pid, "").endswith("job worker")
    ]
    return {
        "minutes": minutes,
        "launch_every_s": every_s,
        "symbols": len(symbols),
        "runs": {status: statuses.count(status) for status in sorted(set(statuses))},
        "daemon_rss_after_first_run_mb": round(baseline, 1),
        "daemon_rss_end_mb": round(end, 1),
        "end_over_baseline": round(end / baseline, 3),
        "growth_mb_per_hour": round(slope_mb_per_hour(second_half), 1),
        "peak_total_mb": round(peak_total, 1),
        "run_worker_peaks_mb": worker_peaks,
        "peak_by_process_mb": {
            f"{roles.get(pid, pid)} ({pid})": round(mb, 1) for pid, mb in peak_by_pid.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 minutes, 100 symbols")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between runs")
    parser.add_argument("--symbols", type=int, default=300)
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.symbols = 4.0, 100
    needed, available = math.ceil(args.minutes * 60 / args.every), len(launches())
    if needed > available:
        parser.error(f"{needed} runs asked for; the calendar has sessions for {available}")
    figures = soak(args.minutes, args.every, common.universe(args.symbols))
    print(
        f"small box soak, {figures['minutes']:.0f} min, a run every "
        f"{figures['launch_every_s']:.0f} s ({JOB} and {INTRADAY_JOB} in turn) over "
        f"{figures['symbols']} symbols: runs "
        f"{figures['runs']}; daemon RSS {figures['daemon_rss_after_first_run_mb']:.0f} MB after "
        f"the first run -> {figures['daemon_rss_end_mb']:.0f} MB at the end "
        f"({figures['end_over_baseline']:.3f}x), {figures['growth_mb_per_hour']:+.1f} MB/hour over "
        f"the second half; peak daemon + worker {figures['peak_total_mb']:.0f} MB "
        f"({figures['peak_by_process_mb']}); each run worker's peak, in order: "
        f"{figures['run_worker_peaks_mb']}"
    )
    common.emit({"benchmark": "soak", "quick": args.quick, **figures})


if __name__ == "__main__":
    main()
