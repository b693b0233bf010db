"""The calendar as deep as the data (2000 onward, no cliff in 2031), partitions described as NYSE
sessions, and no bars written for a session that has not happened yet (issue 19, item 1)."""

from datetime import date, datetime

import dagster as dg
import pytest
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.remote_representation.external_data import RepositorySnap
from dagster._serdes import serialize_value

from volaris_assets import calendar, definitions, settings
from volaris_assets.prices import assets as price_assets
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets_tests.pipeline_support import resources

ET = calendar.NY


def test_sessions_reach_from_2000_to_decades_ahead():
    assert calendar.first_session() == date(2000, 1, 3)
    assert calendar.is_session(date(2000, 1, 3))
    # Ad-hoc closures of the past are in the table: 9/11, Hurricane Sandy, a state funeral.
    for closed in (date(2001, 9, 11), date(2012, 10, 29), date(2018, 12, 5)):
        assert not calendar.is_session(closed)
    assert not calendar.is_session(date(2031, 1, 1)) and calendar.is_session(date(2031, 1, 2))
    assert calendar.session(date(2031, 11, 28)).is_early_close
    # Fails (regenerate nyse_hours with a later CALENDAR_END) well before a cliff can be reached.
    assert calendar.CALENDAR_END.year - date.today().year >= 30


def test_session_partitions_start_in_2000_and_skip_holidays_after_2030():
    partitions = calendar.session_partitions()
    with partition_loading_context(effective_dt=datetime(2031, 1, 6, 20, tzinfo=ET)):
        keys = partitions.get_partition_keys()
    assert keys[0] == "2000-01-03"
    assert "2001-09-11" not in keys and "2001-09-17" in keys
    assert "2031-01-01" not in keys and "2031-01-02" in keys


def test_closures_are_listed_five_years_ahead_and_the_snapshot_stays_small():
    """Dagster copies each partitions' exclusion list into the snapshot of every asset, check
    and job on them; listing closures through 2080 made the code location's snapshot 11 MB."""
    horizon = date(date.today().year + calendar.EXCLUSION_YEARS, 12, 31)
    snapshot_ticks = [
        datetime.fromtimestamp(excluded.timestamp, ET)
        for excluded in calendar.snapshot_partitions().exclusions
        if not isinstance(excluded, str)  # the cron exclusion of 09:00 and 09:15
    ]
    assert max(snapshot_ticks).date() <= horizon < date(horizon.year + 1, 12, 31)
    last_year = [tick for tick in snapshot_ticks if tick.year == horizon.year]
    assert len(last_year) >= 8 * 26  # the horizon's own holidays are all there
    repository = RepositorySnap.from_def(definitions.defs.get_repository_def())
    assert len(serialize_value(repository)) < 5_000_000


def test_first_session_is_configurable_and_validated(monkeypatch):
    monkeypatch.setenv("VOLARIS_FIRST_SESSION", "2010-01-01")
    calendar.first_session.cache_clear()
    try:
        # New Year's Day is no session: the partitions start at the next one.
        assert calendar.first_session() == date(2010, 1, 4)
    finally:
        monkeypatch.delenv("VOLARIS_FIRST_SESSION")
        calendar.first_session.cache_clear()
    [problem] = settings.problems({"VOLARIS_FIRST_SESSION": "1985-01-02"})
    assert problem.variable == "VOLARIS_FIRST_SESSION" and "1990-01-02" in problem.accepted


def test_partitions_describe_themselves_as_nyse_sessions():
    sessions, snapshots = str(calendar.session_partitions()), str(calendar.snapshot_partitions())
    assert sessions.startswith("NYSE trading sessions (ET) from 2000-01-03")
    assert snapshots.startswith("15-minute windows of NYSE regular trading hours")
    assert "offsetted" not in sessions + snapshots and "Daily" not in sessions


class _At0831(datetime):
    """The clock the assets read: 08:31 ET on 2026-11-24, before that session's open."""

    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 11, 24, 8, 31, tzinfo=ET).astimezone(tz)


@pytest.mark.parametrize(
    ("asset", "refusal"),
    [
        (daily_bars, "session 2026-11-24 has not closed yet (it closes at 16:00 ET)"),
        (intraday_bars, "session 2026-11-24 has not opened yet (it opens at 09:30 ET"),
    ],
)
def test_no_bars_for_a_session_that_has_not_happened(
    asset, refusal, sqlite_warehouse_url, small_universe, instance, monkeypatch
):
    res = resources(sqlite_warehouse_url)
    assert dg.materialize([sp500_constituents], resources=res, instance=instance).success
    monkeypatch.setattr(price_assets, "datetime", _At0831)
    result = dg.materialize(
        [asset], partition_key="2026-11-24", resources=res, instance=instance, raise_on_error=False
    )
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert refusal in failure.step_failure_data.user_failure_data.description
    assert result.get_asset_materialization_events() == []


def test_require_closed_names_the_latest_closed_session():
    before_open = datetime(2026, 11, 27, 8, 31, tzinfo=ET)
    with pytest.raises(dg.Failure, match="latest closed session is 2026-11-25"):
        calendar.require_closed([calendar.session(date(2026, 11, 27))], before_open)
    calendar.require_closed([calendar.session(date(2026, 11, 25))], before_open)
