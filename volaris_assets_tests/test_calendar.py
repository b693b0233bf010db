import subprocess
import sys
from datetime import date, datetime, time
from pathlib import Path

import pytest
from dagster._core.definitions.partitions.context import partition_loading_context

from volaris_assets import calendar, nyse_hours
from volaris_assets_tests import calendar_source

ET = calendar.NY


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ET)


@pytest.mark.parametrize("day", [date(2025, 12, 25), date(2026, 11, 26), date(2026, 11, 28)])
def test_holidays_and_weekends_are_not_sessions(day):
    assert not calendar.is_session(day)
    with pytest.raises(ValueError, match="not an NYSE trading session"):
        calendar.session(day)


def test_early_close_day_after_thanksgiving():
    day = calendar.session(date(2026, 11, 27))
    assert day.is_early_close
    assert day.close.astimezone(ET).time() == time(13, 0)
    assert day.minutes == 210
    snapshots = calendar.snapshot_times(day.day)
    assert snapshots[0].astimezone(ET).time() == time(9, 30)
    assert snapshots[-1].astimezone(ET).time() == time(12, 45)


def test_regular_session_has_26_snapshots():
    assert len(calendar.snapshot_times(date(2026, 11, 24))) == 26


def test_session_partitions_skip_closed_days():
    partitions = calendar.session_partitions()
    with partition_loading_context(effective_dt=at("2026-12-31T20:00:00")):
        keys = set(partitions.get_partition_keys())
    assert {"2025-12-24", "2026-11-25", "2026-11-27"} <= keys
    assert not {"2025-12-25", "2026-11-26", "2026-11-28", "2026-11-29"} & keys


def test_snapshot_partitions_follow_market_hours():
    partitions = calendar.snapshot_partitions()
    with partition_loading_context(effective_dt=at("2026-12-01T20:00:00")):
        keys = partitions.get_partition_keys()
    thanksgiving_friday = [k for k in keys if k.startswith("2026-11-27")]
    assert thanksgiving_friday[0] == "2026-11-27-09:30"
    assert thanksgiving_friday[-1] == "2026-11-27-12:45"
    assert not [k for k in keys if k.startswith("2026-11-26")]
    assert len([k for k in keys if k.startswith("2026-11-25")]) == 26
    assert not [k for k in keys if k.endswith("-09:00") or k.endswith("-09:15")]


def test_keys_round_trip():
    instant = calendar.snapshot_instant("2026-11-27-12:45")
    assert instant.astimezone(ET) == at("2026-11-27T12:45:00")
    assert calendar.snapshot_key(instant) == "2026-11-27-12:45"
    assert calendar.session_day("2026-11-27") == date(2026, 11, 27)
    with pytest.raises(ValueError):
        calendar.session_day("2026-11-26")


def test_last_completed_and_in_progress_sessions():
    assert calendar.last_completed_session(at("2026-11-27T12:59:00")).day == date(2026, 11, 25)
    assert calendar.last_completed_session(at("2026-11-27T13:00:00")).day == date(2026, 11, 27)
    assert calendar.session_at(at("2026-11-27T13:30:00")) is None
    assert calendar.session_at(at("2026-11-27T10:00:00")).day == date(2026, 11, 27)


def test_outside_span_is_a_clear_error():
    with pytest.raises(ValueError, match="outside the calendar span"):
        calendar.is_session(date(2090, 1, 2))


def test_the_hours_table_matches_pandas_market_calendars():
    """`nyse_hours` is generated; a pandas-market-calendars upgrade that changes a rule, or a
    hand edit, fails here until the table is regenerated (see calendar_source)."""
    expected = calendar_source.module_text()

    assert Path(nyse_hours.__file__).read_text(encoding="utf-8") == expected


def test_the_code_location_does_not_import_pandas_market_calendars():
    """The daemon, every run and the web UI load the definitions; the calendar package cost each
    of them ~14 MB."""
    probe = (
        "import sys, volaris_assets.definitions\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pandas_market_calendars', 'exchange_calendars'}))"
    )
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", probe],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert out.strip() == "[]"


def test_sessions_between_and_previous_session_agree_with_the_table():
    sessions = calendar.sessions_between(date(2026, 11, 20), date(2026, 11, 30))

    assert [s.day for s in sessions] == [
        date(2026, 11, 20),
        date(2026, 11, 23),
        date(2026, 11, 24),
        date(2026, 11, 25),
        date(2026, 11, 27),
        date(2026, 11, 30),
    ]
    assert calendar.previous_session(date(2026, 11, 27)).day == date(2026, 11, 25)
    assert calendar.previous_session(date(2026, 11, 28)).day == date(2026, 11, 27)
    with pytest.raises(ValueError, match="no session before"):
        calendar.previous_session(calendar.FIRST_SESSION)
