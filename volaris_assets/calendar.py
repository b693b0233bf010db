"""NYSE sessions, and the Dagster partitions built on them.

Daily assets are partitioned by trading session and option-chain snapshots by 15-minute windows
of regular trading hours. Both are plain `TimeWindowPartitionsDefinition`s with `exclusions`, so
the UI, backfills and partition mappings keep working as Dagster intends; this module only
computes which days and windows to exclude. The holiday list is computed for a fixed span (not
"from today"), so the definitions, and therefore the code location's snapshot, do not change from
one day to the next. The exchange's days off and short sessions come from `nyse_hours`, a table
generated from pandas-market-calendars and checked against it by the test suite."""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import dagster as dg

from volaris_assets import nyse_hours

NY = ZoneInfo("America/New_York")
UTC = ZoneInfo("UTC")

# First session of the partitioned history. Earlier data can be stored (backfills of bars through a
# provider) but is not addressable as a partition; raising this costs nothing but UI length.
FIRST_SESSION = date(2025, 1, 2)
FIRST_SNAPSHOT_SESSION = date(2026, 1, 2)
# `nyse_hours` covers this span; extending it means regenerating that table (see its docstring).
CALENDAR_END = date(2030, 12, 31)

# Opening and closing bell (ET) of every session that `nyse_hours.SHORTENED` does not list.
REGULAR_HOURS = (time(9, 30), time(16, 0))

SNAPSHOT_MINUTES = 15
SESSION_KEY_FORMAT = "%Y-%m-%d"
SNAPSHOT_KEY_FORMAT = "%Y-%m-%d-%H:%M"


@dataclass(frozen=True)
class Session:
    """One NYSE trading day; `open`/`close` are tz-aware UTC."""

    day: date
    open: datetime
    close: datetime

    @property
    def is_early_close(self) -> bool:
        return self.close.astimezone(NY).time() < time(16, 0)

    @property
    def minutes(self) -> int:
        return int((self.close - self.open).total_seconds() // 60)


@functools.cache
def _sessions() -> dict[date, Session]:
    """Every session of the span, in order: the weekdays that are not `nyse_hours.CLOSED`."""
    out, day = {}, FIRST_SESSION
    while day <= CALENDAR_END:
        if day.weekday() < 5 and day not in nyse_hours.CLOSED:
            opens, closes = nyse_hours.SHORTENED.get(day, REGULAR_HOURS)
            out[day] = Session(day=day, open=_utc(day, opens), close=_utc(day, closes))
        day += timedelta(days=1)
    return out


@functools.cache
def _days() -> list[date]:
    return list(_sessions())


def _utc(day: date, bell: time) -> datetime:
    return datetime.combine(day, bell, tzinfo=NY).astimezone(UTC)


def _check_span(day: date) -> None:
    if not FIRST_SESSION <= day <= CALENDAR_END:
        raise ValueError(f"{day} is outside the calendar span {FIRST_SESSION}..{CALENDAR_END}")


def is_session(day: date) -> bool:
    _check_span(day)
    return day in _sessions()


def session(day: date) -> Session:
    """The session on `day`; raises ValueError for weekends, holidays and out-of-span dates."""
    _check_span(day)
    try:
        return _sessions()[day]
    except KeyError:
        raise ValueError(f"{day} is not an NYSE trading session") from None


def sessions_between(start: date, end: date) -> list[Session]:
    """Sessions with start <= day <= end."""
    days = _days()
    sessions = _sessions()
    return [
        sessions[d] for d in days[bisect.bisect_left(days, start) : bisect.bisect_right(days, end)]
    ]


def previous_session(day: date) -> Session:
    """The last session strictly before `day`."""
    days = _days()
    before = bisect.bisect_left(days, day)
    if before == 0:
        raise ValueError(f"no session before {day} in the calendar span")
    return _sessions()[days[before - 1]]


def last_completed_session(now: datetime) -> Session:
    """The most recent session whose close is at or before `now`."""
    today = now.astimezone(NY).date()
    if is_session(today) and session(today).close <= now:
        return session(today)
    return previous_session(today)


def session_at(now: datetime) -> Session | None:
    """The session in progress at `now` (open <= now < close), if any."""
    today = now.astimezone(NY).date()
    if not is_session(today):
        return None
    current = session(today)
    return current if current.open <= now < current.close else None


def snapshot_times(day: date) -> list[datetime]:
    """The 15-minute snapshot instants (UTC) of a session: open, open+15m, ... < close."""
    current = session(day)
    step = timedelta(minutes=SNAPSHOT_MINUTES)
    count = current.minutes // SNAPSHOT_MINUTES
    return [current.open + i * step for i in range(count)]


def _holidays() -> list[date]:
    return sorted(day for day in nyse_hours.CLOSED if FIRST_SESSION <= day <= CALENDAR_END)


def _early_closes() -> list[Session]:
    return [current for current in _sessions().values() if current.is_early_close]


@functools.cache
def session_partitions() -> dg.TimeWindowPartitionsDefinition:
    """One partition per NYSE session, keyed YYYY-MM-DD, available from the session's midnight.

    `end_offset=1` makes today's session addressable while it trades, so the intraday job and the
    after-close jobs can target it the same day.
    """
    return dg.DailyPartitionsDefinition(
        start_date=FIRST_SESSION.isoformat(),
        timezone="America/New_York",
        end_offset=1,
        exclusions=[
            "0 0 * * 6",
            "0 0 * * 0",
            *[datetime.combine(d, time(0, 0)) for d in _holidays()],
        ],
    )


@functools.cache
def snapshot_partitions() -> dg.TimeWindowPartitionsDefinition:
    """One partition per 15-minute window of regular trading hours, keyed YYYY-MM-DD-HH:MM (ET).

    The cron covers 09:00-15:45 on weekdays; the 09:00 and 09:15 ticks, every tick of a holiday and
    every tick at or after an early close are excluded.
    """
    excluded: list[str | datetime] = ["0,15 9 * * *"]
    for holiday in _holidays():
        if holiday >= FIRST_SNAPSHOT_SESSION:
            excluded.extend(_ticks(holiday, time(9, 30), time(16, 0)))
    for early in _early_closes():
        if early.day >= FIRST_SNAPSHOT_SESSION:
            excluded.extend(_ticks(early.day, early.close.astimezone(NY).time(), time(16, 0)))
    return dg.TimeWindowPartitionsDefinition(
        start=datetime.combine(FIRST_SNAPSHOT_SESSION, time(9, 30)),
        fmt=SNAPSHOT_KEY_FORMAT,
        cron_schedule="*/15 9-15 * * 1-5",
        timezone="America/New_York",
        end_offset=1,
        exclusions=excluded,
    )


def _ticks(day: date, start: time, end: time) -> list[datetime]:
    """Naive ET datetimes every 15 minutes in [start, end) on `day` (exclusions are naive)."""
    tick = datetime.combine(day, start)
    stop = datetime.combine(day, end)
    out = []
    while tick < stop:
        out.append(tick)
        tick += timedelta(minutes=SNAPSHOT_MINUTES)
    return out


def session_day(partition_key: str) -> date:
    """The session date of a session partition key, validated against the calendar."""
    day = datetime.strptime(partition_key, SESSION_KEY_FORMAT).date()
    session(day)
    return day


def snapshot_instant(partition_key: str) -> datetime:
    """The UTC instant of a snapshot partition key."""
    local = datetime.strptime(partition_key, SNAPSHOT_KEY_FORMAT).replace(tzinfo=NY)
    return local.astimezone(UTC)


def snapshot_key(instant: datetime) -> str:
    return instant.astimezone(NY).strftime(SNAPSHOT_KEY_FORMAT)
