"""Run a market-hours benchmark while the NYSE is shut, on a clock moved back into a session.

A day replay cannot compress time (the providers' windows would compress with it), and Dagster's
schedules tick on the wall clock, so the replay needs the market open. Off hours it re-executes
itself under libfaketime (the build of the `libfaketime` package in the `bench` extra: Debian
bookworm's 0.9.10 fails Python 3.11's `time.sleep` with EINVAL), every clock of the benchmark
and of each process it starts (daemon, run workers: they inherit the environment) moved back by
a constant, to the latest moment of the latest session that still has room for the replay.
Seconds stay seconds: only the date and time of day change. The monotonic clock is left alone
(asyncio and timeouts keep their real pace). Not moved: the PostgreSQL server's clock, which the
shared budget reads for its own arithmetic only (never compared with a client's), so pacing is
unaffected.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, time, timedelta

from volaris_assets import calendar

SHIFT_VARIABLE = "VOLARIS_BENCH_CLOCK_SHIFT_S"
# Start no earlier than this after the open: the schedules' first ticks of the day are done.
AFTER_OPEN = timedelta(minutes=30)


def shift_s() -> int:
    """The shift this process runs under (0: the real clock)."""
    return int(os.environ.get(SHIFT_VARIABLE, "0"))


def session_start(now: datetime, minutes: float) -> datetime:
    """The latest moment at or before `now` from which `minutes` fit before a close, at
    least `AFTER_OPEN` into the session."""
    day = now.astimezone(calendar.NY).date()
    for _ in range(30):
        if calendar.is_session(day):
            session = calendar.session(day)
            latest = session.close - timedelta(minutes=minutes)
            start = min(latest, now)
            if start >= session.open + AFTER_OPEN:
                return start
        day -= timedelta(days=1)
    raise SystemExit(f"no session in the 30 days before {now:%Y-%m-%d} fits {minutes} minutes")


def session_start_at(now: datetime, minutes: float, at: time) -> datetime:
    """`at` (ET) on the latest session from which `minutes` have passed by `now`: the replay of
    a given stretch of the day, the open or the close included."""
    day = now.astimezone(calendar.NY).date()
    for _ in range(30):
        start = datetime.combine(day, at, tzinfo=calendar.NY)
        if calendar.is_session(day) and start + timedelta(minutes=minutes) <= now:
            return start.astimezone(now.tzinfo)
        day -= timedelta(days=1)
    raise SystemExit(f"no session in the 30 days before {now:%Y-%m-%d} has {at:%H:%M} ET")


def rerun_in_session(now: datetime, minutes: float, at: time | None = None) -> None:
    """Re-execute this benchmark, same arguments, on a clock moved into the latest session
    (to `at` ET on it, if given)."""
    try:
        import libfaketime
    except ImportError:
        raise SystemExit(
            "the NYSE is shut, and replaying the latest session instead needs libfaketime: "
            "pip install -e '.[bench]' (or run while the market is open)"
        ) from None
    _, preload = libfaketime.get_reload_information()
    start = session_start(now, minutes) if at is None else session_start_at(now, minutes, at)
    offset = int((start - now).total_seconds())
    env = {
        **os.environ,
        **preload,
        "DONT_FAKE_MONOTONIC": "1",
        "FAKETIME": f"{offset:+d}",
        SHIFT_VARIABLE: str(offset),
    }
    print(f"NYSE shut: replaying from {now + timedelta(seconds=offset):%Y-%m-%d %H:%M} UTC")
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, "-m", *module_and_args()], env)


def module_and_args() -> list[str]:
    """`bench.bench_day --minutes 60`: how this process was started with `-m`."""
    spec = sys.modules["__main__"].__spec__
    if spec is None:
        raise SystemExit("run the benchmark as a module: python -m bench.<name>")
    return [spec.name, *sys.argv[1:]]
