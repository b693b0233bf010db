"""NYSE sessions, and the Dagster partitions built on them.

Daily assets are partitioned by trading session and option-chain snapshots by 15-minute windows
of regular trading hours. Both are plain `TimeWindowPartitionsDefinition`s with `exclusions`, so
the UI, backfills and partition mappings keep working as Dagster intends; this module only
computes which days and windows to exclude. The holiday list is computed for a fixed span (not
"from today"), so the definitions, and therefore the code location's snapshot, do not change from
one day to the next. The exchange's days off and short sessions come from `nyse_hours`, a table
generated from pandas-market-calendars and checked against it by the test suite.

The table spans 1990-2080 and is shipped rather than computed at load: computing it needs pandas
and the calendar package in every process (~14 MB and ~0.4 s each), while the table is ~1,300
`date` objects (bench/bench_calendar.py measures load time and the daemon's RSS). The
session partitions start at the configured first session (VOLARIS_FIRST_SESSION, default
2000-01-03), so backfills of older bars run through Dagster like any other partition range."""

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

# `nyse_hours` covers FIRST_SESSION..CALENDAR_END; changing the span means regenerating that table
# (see its docstring). The session partitions start later, at `first_session()`.
FIRST_SESSION = date(1990, 1, 2)
CALENDAR_END = date(2080, 12, 31)
# Default of VOLARIS_FIRST_SESSION: the first session of 2000, as far back as users backfill bars.
DEFAULT_FIRST_PARTITION = date(2000, 1, 3)
# Chains cannot be replayed from providers: snapshots exist only from the project's own history.
FIRST_SNAPSHOT_SESSION = date(2026, 1, 2)
# How many years past the current one the partitions exclude closed days for. Dagster copies the
# exclusion list into the snapshot of every asset, check and job on the partitions, and a
# holiday is 26 excluded ticks of the snapshot partitions: through CALENDAR_END the lists made
# 7 of the code location's 11 MB snapshot, which the web UI and a code server (de)serialize on
# each load. Five years outlast any daemon between restarts (a restart reloads the code).
EXCLUSION_YEARS = 5

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
def _days() -> list[date]:
    """Every session day of the span, in order: the weekdays that are not `nyse_hours.CLOSED`.

    Only the dates (~23,000 of them, ~1 MB): a `Session` for each, with its two zone-converted
    bells, cost ~6.5 MB and ~0.4 s in every process that asked any calendar question (the
    daemon's first schedule tick, every run worker), to answer questions about a few days.
    `session()` builds the ones asked for.
    """
    out, day = [], FIRST_SESSION
    while day <= CALENDAR_END:
        if _trades(day):
            out.append(day)
        day += timedelta(days=1)
    return out


def _trades(day: date) -> bool:
    return day.weekday() < 5 and day not in nyse_hours.CLOSED


# Enough for every session a schedule, a sensor or a year's backfill asks about again.
@functools.lru_cache(maxsize=1024)
def _session(day: date) -> Session:
    opens, closes = nyse_hours.SHORTENED.get(day, REGULAR_HOURS)
    return Session(day=day, open=_utc(day, opens), close=_utc(day, closes))


def _utc(day: date, bell: time) -> datetime:
    return datetime.combine(day, bell, tzinfo=NY).astimezone(UTC)


def _check_span(day: date) -> None:
    if not FIRST_SESSION <= day <= CALENDAR_END:
        raise ValueError(f"{day} is outside the calendar span {FIRST_SESSION}..{CALENDAR_END}")


def is_session(day: date) -> bool:
    _check_span(day)
    return _trades(day)


def session(day: date) -> Session:
    """The session on `day`; raises ValueError for weekends, holidays and out-of-span dates."""
    if not is_session(day):
        raise ValueError(f"{day} is not an NYSE trading session")
    return _session(day)


def sessions_between(start: date, end: date) -> list[Session]:
    """Sessions with start <= day <= end."""
    days = _days()
    return [
        _session(d) for d in days[bisect.bisect_left(days, start) : bisect.bisect_right(days, end)]
    ]


def previous_session(day: date) -> Session:
    """The last session strictly before `day`."""
    days = _days()
    before = bisect.bisect_left(days, day)
    if before == 0:
        raise ValueError(f"no session before {day} in the calendar span")
    return _session(days[before - 1])


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


def market_time_between(start: datetime, end: datetime) -> timedelta:
    """The regular-hours trading time from `start` to `end` (nothing when `end` is earlier):
    how far the market moved on between two instants, nights and holidays not counted."""
    total = timedelta(0)
    if end <= start:
        return total
    for current in sessions_between(start.astimezone(NY).date(), end.astimezone(NY).date()):
        total += max(timedelta(0), min(end, current.close) - max(start, current.open))
    return total


def snapshot_times(day: date) -> list[datetime]:
    """The 15-minute snapshot instants (UTC) of a session: open, open+15m, ... < close."""
    current = session(day)
    step = timedelta(minutes=SNAPSHOT_MINUTES)
    count = current.minutes // SNAPSHOT_MINUTES
    return [current.open + i * step for i in range(count)]


def _exclusions_end() -> date:
    """The last day whose closures the partitions list (see EXCLUSION_YEARS)."""
    return min(date(date.today().year + EXCLUSION_YEARS, 12, 31), CALENDAR_END)


def _holidays(first: date) -> list[date]:
    return sorted(day for day in nyse_hours.CLOSED if first <= day <= _exclusions_end())


def _early_closes(first: date) -> list[tuple[date, time]]:
    """(day, closing bell ET) of the short sessions from `first`: read from the table directly,
    so that loading the definitions does not build every Session of the span."""
    return [
        (day, closes)
        for day, (_, closes) in sorted(nyse_hours.SHORTENED.items())
        if first <= day <= _exclusions_end() and closes < REGULAR_HOURS[1]
    ]


@functools.cache
def first_session() -> date:
    """The first session partition: VOLARIS_FIRST_SESSION, moved to the next session if it is
    not one. Read from the settings model here, not at import: the model imports this module."""
    from volaris_assets import settings

    day = settings.load().first_session
    while day.weekday() >= 5 or day in nyse_hours.CLOSED:
        day += timedelta(days=1)
    return day


class SessionPartitionsDefinition(dg.DailyPartitionsDefinition):
    """Dagster's daily partitions, described as what they are: NYSE sessions.

    The description reaches Python, the CLI and Dagster's error messages. The web UI rebuilds a
    plain definition from the code location's snapshot, which has no description field in
    Dagster 1.13, so there it still reads "Daily, starting ..."; the assets' own descriptions say
    "one partition per NYSE session".
    """

    def __str__(self) -> str:
        return (
            f"NYSE trading sessions (ET) from {self.start.date().isoformat()}, one partition per "
            "session keyed YYYY-MM-DD; weekends and exchange holidays are not partitions. "
            "Today's session is listed from midnight ET; its daily bars are written only once it "
            "has closed."
        )


class SnapshotPartitionsDefinition(dg.TimeWindowPartitionsDefinition):
    """Dagster's cron partitions, described as what they are: 15-minute windows of NYSE hours."""

    def __str__(self) -> str:
        return (
            f"15-minute windows of NYSE regular trading hours (ET) from "
            f"{self.start.date().isoformat()}, keyed YYYY-MM-DD-HH:MM at the window's start; "
            "closed days and the minutes after an early close are not partitions."
        )


@functools.cache
def session_partitions() -> dg.TimeWindowPartitionsDefinition:
    """One partition per NYSE session, keyed YYYY-MM-DD, listed from the session's midnight.

    `end_offset=1` makes today's session addressable while it trades, so the intraday job and the
    after-close jobs can target it the same day; an asset that must not write a session before
    its close (daily bars) refuses it with `require_closed`. Holidays are excluded through the
    end of the year EXCLUSION_YEARS from now.
    """
    first = first_session()
    return SessionPartitionsDefinition(
        start_date=first.isoformat(),
        timezone="America/New_York",
        end_offset=1,
        exclusions=[
            "0 0 * * 6",
            "0 0 * * 0",
            *[datetime.combine(d, time(0, 0)) for d in _holidays(first)],
        ],
    )


@functools.cache
def snapshot_partitions() -> dg.TimeWindowPartitionsDefinition:
    """One partition per 15-minute window of regular trading hours, keyed YYYY-MM-DD-HH:MM (ET).

    The cron covers 09:00-15:45 on weekdays; the 09:00 and 09:15 ticks, every tick of a holiday and
    every tick at or after an early close are excluded, the last two through the end of the
    year EXCLUSION_YEARS from now.
    """
    excluded: list[str | datetime] = ["0,15 9 * * *"]
    for holiday in _holidays(FIRST_SNAPSHOT_SESSION):
        excluded.extend(_ticks(holiday, time(9, 30), time(16, 0)))
    for day, closes in _early_closes(FIRST_SNAPSHOT_SESSION):
        excluded.extend(_ticks(day, closes, time(16, 0)))
    return SnapshotPartitionsDefinition(
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


def require_closed(sessions: list[Session], now: datetime) -> None:
    """Refuse a step over sessions that have not closed at `now`: their bars do not exist yet,
    and whatever a provider answered would be stored as the session's."""
    pending = [current for current in sessions if current.close > now]
    if pending:
        raise dg.Failure(
            description=f"session {pending[0].day} has not closed yet (it closes at "
            f"{pending[0].close.astimezone(NY):%H:%M} ET); its bars can be written after that. "
            f"The latest closed session is {last_completed_session(now).day}."
        )


def require_opened(sessions: list[Session], now: datetime) -> None:
    """Refuse a step over sessions that have not opened at `now` (nothing has traded yet)."""
    pending = [current for current in sessions if current.open > now]
    if pending:
        raise dg.Failure(
            description=f"session {pending[0].day} has not opened yet (it opens at "
            f"{pending[0].open.astimezone(NY):%H:%M} ET on {pending[0].day})."
        )


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
