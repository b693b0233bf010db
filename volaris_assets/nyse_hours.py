"""NYSE weekdays without a session, and sessions with other hours, 2025-01-02..2030-12-31.

The hours of every other session are `calendar.REGULAR_HOURS`.

Generated from pandas-market-calendars 5.5.0 by
`python -m volaris_assets_tests.calendar_source > volaris_assets/nyse_hours.py`; do not edit by
hand. `volaris_assets_tests/test_calendar.py` checks it against that package, which is a test
dependency only: importing it cost every process ~14 MB.
"""

from datetime import date, time

CLOSED = frozenset(
    {
        date(2025, 1, 9),
        date(2025, 1, 20),
        date(2025, 2, 17),
        date(2025, 4, 18),
        date(2025, 5, 26),
        date(2025, 6, 19),
        date(2025, 7, 4),
        date(2025, 9, 1),
        date(2025, 11, 27),
        date(2025, 12, 25),
        date(2026, 1, 1),
        date(2026, 1, 19),
        date(2026, 2, 16),
        date(2026, 4, 3),
        date(2026, 5, 25),
        date(2026, 6, 19),
        date(2026, 7, 3),
        date(2026, 9, 7),
        date(2026, 11, 26),
        date(2026, 12, 25),
        date(2027, 1, 1),
        date(2027, 1, 18),
        date(2027, 2, 15),
        date(2027, 3, 26),
        date(2027, 5, 31),
        date(2027, 6, 18),
        date(2027, 7, 5),
        date(2027, 9, 6),
        date(2027, 11, 25),
        date(2027, 12, 24),
        date(2028, 1, 17),
        date(2028, 2, 21),
        date(2028, 4, 14),
        date(2028, 5, 29),
        date(2028, 6, 19),
        date(2028, 7, 4),
        date(2028, 9, 4),
        date(2028, 11, 23),
        date(2028, 12, 25),
        date(2029, 1, 1),
        date(2029, 1, 15),
        date(2029, 2, 19),
        date(2029, 3, 30),
        date(2029, 5, 28),
        date(2029, 6, 19),
        date(2029, 7, 4),
        date(2029, 9, 3),
        date(2029, 11, 22),
        date(2029, 12, 25),
        date(2030, 1, 1),
        date(2030, 1, 21),
        date(2030, 2, 18),
        date(2030, 4, 19),
        date(2030, 5, 27),
        date(2030, 6, 19),
        date(2030, 7, 4),
        date(2030, 9, 2),
        date(2030, 11, 28),
        date(2030, 12, 25),
    }
)

SHORTENED = {
    date(2025, 7, 3): (time(9, 30), time(13, 0)),
    date(2025, 11, 28): (time(9, 30), time(13, 0)),
    date(2025, 12, 24): (time(9, 30), time(13, 0)),
    date(2026, 11, 27): (time(9, 30), time(13, 0)),
    date(2026, 12, 24): (time(9, 30), time(13, 0)),
    date(2027, 11, 26): (time(9, 30), time(13, 0)),
    date(2028, 7, 3): (time(9, 30), time(13, 0)),
    date(2028, 11, 24): (time(9, 30), time(13, 0)),
    date(2029, 7, 3): (time(9, 30), time(13, 0)),
    date(2029, 11, 23): (time(9, 30), time(13, 0)),
    date(2029, 12, 24): (time(9, 30), time(13, 0)),
    date(2030, 7, 3): (time(9, 30), time(13, 0)),
    date(2030, 11, 29): (time(9, 30), time(13, 0)),
    date(2030, 12, 24): (time(9, 30), time(13, 0)),
}
