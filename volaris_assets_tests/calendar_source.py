"""Writes `volaris_assets/nyse_hours.py` from pandas-market-calendars, the maintained source of
NYSE rules, so that running processes do not import it (~14 MB and ~0.4 s in every process:
the daemon, each run, the web UI). `test_calendar` fails when the two disagree.

Regenerate after a pandas-market-calendars upgrade or a change of the calendar span:
    python -m volaris_assets_tests.calendar_source > volaris_assets/nyse_hours.py
"""

from __future__ import annotations

from datetime import date, time, timedelta
from importlib.metadata import version

from volaris_assets.calendar import CALENDAR_END, FIRST_SESSION, NY, REGULAR_HOURS

_HEADER = '''"""NYSE weekdays without a session, and sessions with other hours, {first}..{last}.

The hours of every other session are `calendar.REGULAR_HOURS`.

Generated from pandas-market-calendars {version} by
`python -m volaris_assets_tests.calendar_source > volaris_assets/nyse_hours.py`; do not edit by
hand. `volaris_assets_tests/test_calendar.py` checks it against that package, which is a test
dependency only: importing it cost every process ~14 MB.
"""

from datetime import date, time
'''


def exchange_hours() -> tuple[list[date], dict[date, tuple[time, time]]]:
    """Weekdays without a session, and sessions whose ET hours are not REGULAR_HOURS, per
    pandas-market-calendars over the calendar span."""
    import pandas_market_calendars as mcal

    frame = mcal.get_calendar("NYSE").schedule(
        start_date=FIRST_SESSION.isoformat(), end_date=CALENDAR_END.isoformat()
    )
    hours = {
        stamp.date(): (
            opened.tz_convert(NY).time(),
            closed.tz_convert(NY).time(),
        )
        for stamp, opened, closed in zip(
            frame.index, frame["market_open"], frame["market_close"], strict=True
        )
    }
    weekend = [day for day in hours if day.weekday() >= 5]
    if weekend:
        raise ValueError(f"weekend sessions are not representable: {weekend}")
    closed_days, day = [], FIRST_SESSION
    while day <= CALENDAR_END:
        if day.weekday() < 5 and day not in hours:
            closed_days.append(day)
        day += timedelta(days=1)
    shortened = {day: span for day, span in hours.items() if span != REGULAR_HOURS}
    return closed_days, shortened


def module_text() -> str:
    closed_days, shortened = exchange_hours()
    lines = [
        _HEADER.format(
            first=FIRST_SESSION, last=CALENDAR_END, version=version("pandas_market_calendars")
        ),
        "CLOSED = frozenset(",
        "    {",
        *(f"        date({d.year}, {d.month}, {d.day})," for d in closed_days),
        "    }",
        ")",
        "",
        "SHORTENED = {",
        *(
            f"    date({d.year}, {d.month}, {d.day}): "
            f"(time({o.hour}, {o.minute}), time({c.hour}, {c.minute})),"
            for d, (o, c) in sorted(shortened.items())
        ),
        "}",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(module_text(), end="")
