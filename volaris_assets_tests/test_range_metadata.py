"""A backfill range run, as the UI shows it per partition: each session's materialization says
it came from a range run and carries its own stored rows; checks say which range they judged.
(Dagster stamps a range run's one result on every partition: dagster-io/dagster#18123.)"""

from __future__ import annotations

from datetime import date

import dagster as dg

from volaris_assets import calendar
from volaris_assets.ingest.range_metadata import MAX_LISTED_SESSIONS, listed_by_session
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.prices.checks import daily_bars_consistent, minute_bars_on_session_grid
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import materialize_all, metadata, resources

RANGE = ("2026-11-20", "2026-11-24")  # three sessions: Fri 20, Mon 23, Tue 24


def _range_run(assets: list, url: str, instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = dg.materialize(
        assets,
        tags={
            "dagster/asset_partition_range_start": RANGE[0],
            "dagster/asset_partition_range_end": RANGE[1],
        },
        resources=resources(url),
        instance=instance,
    )
    assert result.success
    return result


def _stored(url: str, timeframes: tuple[str, ...]) -> dict[str, int]:
    frame = Warehouse(url).read_frame(
        "SELECT ts FROM price_bars WHERE timeframe IN ("
        + ", ".join(f"'{t}'" for t in timeframes)
        + ")"
    )
    days = frame["ts"].map(lambda ts: str(ts)[:10])
    return days.value_counts().to_dict()


def test_each_session_of_a_range_run_carries_its_own_rows(warehouse_url, small_universe, instance):
    materialize_all(warehouse_url, instance)  # the universe, and 2026-11-24 already written
    result = _range_run([daily_bars, daily_bars_consistent], warehouse_url, instance)

    sessions = [
        s.day.isoformat() for s in calendar.sessions_between(date(2026, 11, 20), date(2026, 11, 24))
    ]
    assert sessions == ["2026-11-20", "2026-11-23", "2026-11-24"]
    stored = _stored(warehouse_url, ("1d",))
    meta = metadata(result, "daily_bars")
    assert meta["partition_range"] == "2026-11-20..2026-11-24"
    assert "3 sessions" in meta["metadata_scope"]
    assert meta["rows_by_session"] == {day: stored[day] for day in sessions}
    assert sum(meta["rows_by_session"].values()) == meta["rows_written"]

    # Every partition's latest materialization is the range run's, and says so.
    records = instance.fetch_materializations(dg.AssetKey("daily_bars"), limit=10).records
    latest = {}
    for record in records:  # newest first
        latest.setdefault(record.asset_materialization.partition, record)
    for day in sessions:
        own = latest[day].asset_materialization.metadata
        assert own["partition_range"].value == "2026-11-20..2026-11-24"
        assert own["rows_by_session"].value[day] == len(small_universe)

    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed
    assert evaluation.metadata["partition_range"].value == "2026-11-20..2026-11-24"


def test_an_intraday_range_run_counts_minute_and_five_minute_bars_per_session(
    warehouse_url, small_universe, instance
):
    materialize_all(warehouse_url, instance)
    result = _range_run([intraday_bars, minute_bars_on_session_grid], warehouse_url, instance)

    stored = _stored(warehouse_url, ("1m", "5m"))
    per_session = metadata(result, "intraday_bars")["rows_by_session"]
    assert per_session == {day: stored[day] for day in ("2026-11-20", "2026-11-23", "2026-11-24")}
    assert set(per_session.values()) == {(390 + 78) * len(small_universe)}
    (evaluation,) = result.get_asset_check_evaluations()
    assert evaluation.passed and evaluation.metadata["failing_sessions"].value == []
    assert evaluation.metadata["partition_range"].value == "2026-11-20..2026-11-24"


def test_a_single_session_run_needs_no_range_labels(sqlite_warehouse_url, small_universe, instance):
    results = materialize_all(sqlite_warehouse_url, instance)
    single = metadata(results[-1], "daily_bars")
    assert "partition_range" not in single and "rows_by_session" not in single


def test_a_years_deep_range_lists_a_summary_and_its_empty_sessions():
    days = [date(2020, 1, 1).fromordinal(date(2020, 1, 1).toordinal() + i) for i in range(100)]
    per_session = {day: (0 if i in (3, 70) else 10) for i, day in enumerate(days)}
    listed = listed_by_session(per_session)
    assert len(per_session) > MAX_LISTED_SESSIONS
    assert listed["sessions"] == 100 and listed["min"] == 0 and listed["max"] == 10
    assert listed["empty_sessions"] == 2
    assert listed["first_empty_sessions"] == [days[3].isoformat(), days[70].isoformat()]
