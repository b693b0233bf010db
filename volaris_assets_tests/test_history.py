"""The history tiers on real warehouses: compaction, deletion only of verified rows, the view
over both tiers, crash recovery, a corrupt or missing cold file, retention, storage sizes."""

import functools
import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from volaris_assets import calendar, doctor, redaction, settings
from volaris_assets.history import compaction
from volaris_assets.history import definitions as history_definitions
from volaris_assets.history.assets import operational_retention, option_history
from volaris_assets.history.checks import cold_files_readable
from volaris_assets.history.cold import ColdStore
from volaris_assets.history.query import atm_iv_series, open_history
from volaris_assets.history.resource import HistoryResource
from volaris_assets.history.storage import measure
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse.store import Warehouse

SESSIONS = [date(2026, 11, 20), date(2026, 11, 23), date(2026, 11, 24)]
SYMBOLS = ["AAPL", "KO"]
MARKET = SimulatedMarket()


def snapshot_rows(day: date, times: int = 2) -> pd.DataFrame:
    """`times` real simulated snapshots of SYMBOLS in `day`'s session, as option_snapshots rows."""
    return _snapshot_rows(day, times).copy()


@functools.cache
def _snapshot_rows(day: date, times: int) -> pd.DataFrame:
    frames = []
    for instant in calendar.snapshot_times(day)[:times]:
        for symbol in SYMBOLS:
            chain = MARKET.option_chain(symbol, instant).drop(columns=["quote_ts"])
            frames.append(chain.assign(snapshot_ts=instant))
    return pd.concat(frames, ignore_index=True)


def load(url: str, days=SESSIONS) -> tuple[Warehouse, int]:
    warehouse = Warehouse(url)
    warehouse.create_tables()
    written = 0
    for day in days:
        rows = snapshot_rows(day)
        written += warehouse.run_transaction(
            lambda c, r=rows: warehouse.upsert(c, "option_snapshots", r)
        )
    return warehouse, written


def hot_count(warehouse: Warehouse, day: date | None = None) -> int:
    query = "SELECT count(*) AS n FROM option_snapshots"
    if day is None:
        return int(warehouse.read_frame(query)["n"].iloc[0])
    lo, hi = compaction.day_bounds(day)
    return int(
        warehouse.read_frame(
            query + " WHERE snapshot_ts >= :lo AND snapshot_ts < :hi",
            lo=warehouse.instant(lo),
            hi=warehouse.instant(hi),
        )["n"].iloc[0]
    )


def view_count(warehouse: Warehouse, store: ColdStore) -> int:
    with open_history(warehouse, store) as history:
        keys = history.sql(
            "SELECT count(*) AS n, count(DISTINCT (occ_symbol, snapshot_ts)) AS k "
            "FROM option_history"
        )
    assert keys["n"].iloc[0] == keys["k"].iloc[0], "a key read twice"
    return int(keys["n"].iloc[0])


def resources(url: str, store: ColdStore) -> dict:
    return {
        "warehouse": WarehouseResource(database_url=url),
        "history": HistoryResource(url=store.url, retain_results_days=7),
    }


def test_compaction_moves_a_session_and_the_view_reads_both_tiers(
    warehouse_url, tmp_path, instance
):
    warehouse, written = load(warehouse_url)
    store = ColdStore(str(tmp_path / "history"))
    first = SESSIONS[0].isoformat()
    try:
        result = dg.materialize(
            [option_history],
            partition_key=first,
            resources=resources(warehouse_url, store),
            instance=instance,
        )
        meta = result.asset_materializations_for_node("option_history")[0].metadata
        in_session = meta["rows"].value
        assert in_session == meta["hot_rows_deleted"].value > 0
        assert meta["bytes"].value > 0 and meta["deferred_symbols"].value == 0
        assert hot_count(warehouse, SESSIONS[0]) == 0
        assert hot_count(warehouse) == written - in_session  # other sessions stay hot
        assert view_count(warehouse, store) == written

        # One symbol, one session, through the function: cold values equal the market's.
        with open_history(warehouse, store, symbols=["KO"], first=SESSIONS[0],
                          last=SESSIONS[0]) as history:  # fmt: skip
            assert history.cold_files == 1 and history.hot_rows == 0
            cold = history.sql("SELECT * FROM option_history ORDER BY occ_symbol, snapshot_ts")
            series = atm_iv_series(history, "KO")
        expected = snapshot_rows(SESSIONS[0]).query("symbol == 'KO'")
        assert len(cold) == len(expected) and set(cold["symbol"]) == {"KO"}
        expected = expected.sort_values(["occ_symbol", "snapshot_ts"]).reset_index(drop=True)
        pd.testing.assert_series_equal(
            cold["mark_price"].astype(float), expected["mark_price"], check_exact=False,
            rtol=1e-6, check_names=False,
        )  # fmt: skip
        assert len(series) == 2 and series["atm_iv_30d"].between(0.05, 2).all()

        # Re-run: idempotent; the file keeps its rows, nothing more is deleted.
        again = compaction.compact_session(warehouse, store, SESSIONS[0])
        assert (again.rows, again.hot_rows_deleted) == (in_session, 0)
        assert view_count(warehouse, store) == written
    finally:
        warehouse.dispose()


def test_a_crash_between_write_and_delete_loses_nothing(warehouse_url, tmp_path, monkeypatch):
    warehouse, written = load(warehouse_url, SESSIONS[:1])
    store = ColdStore(str(tmp_path / "history"))
    try:
        # A crash before the file is published: a temporary file is left, the hot rows stay.
        def crash(*_args, **_kwargs):
            raise KeyboardInterrupt("killed")

        monkeypatch.setattr(ColdStore, "publish", crash)
        with pytest.raises(KeyboardInterrupt):
            compaction.compact_session(warehouse, store, SESSIONS[0])
        monkeypatch.undo()
        assert hot_count(warehouse) == written and not store.exists(store.file_path(SESSIONS[0]))

        # A crash after publishing, before any hot row is deleted: both tiers hold the rows.
        monkeypatch.setattr(compaction, "_delete_verified", crash)
        with pytest.raises(KeyboardInterrupt):
            compaction.compact_session(warehouse, store, SESSIONS[0])
        monkeypatch.undo()
        assert hot_count(warehouse) == written
        assert view_count(warehouse, store) == written  # each key once

        # The re-run merges the file with the hot rows, writes them once and deletes.
        done = compaction.compact_session(warehouse, store, SESSIONS[0])
        assert (done.rows, done.rows_from_file, done.hot_rows_deleted) == (written,) * 3
        assert hot_count(warehouse) == 0 and view_count(warehouse, store) == written
        assert store.discard_temporaries(SESSIONS[0]) == 0  # the first crash's was removed
    finally:
        warehouse.dispose()


def test_hot_rows_changed_during_compaction_stay_hot(sqlite_warehouse_url, tmp_path, monkeypatch):
    """A snapshot written while the file is built is not in it: its symbol's rows are kept."""
    warehouse, written = load(sqlite_warehouse_url, SESSIONS[:1])
    store = ColdStore(str(tmp_path / "history"))
    late = snapshot_rows(SESSIONS[0], times=3).query("symbol == 'KO'").tail(5)
    publish = ColdStore.publish

    def publish_then_write(self, temp, day):
        publish(self, temp, day)
        warehouse.run_transaction(lambda c: warehouse.upsert(c, "option_snapshots", late))

    monkeypatch.setattr(ColdStore, "publish", publish_then_write)
    try:
        done = compaction.compact_session(warehouse, store, SESSIONS[0])
        assert done.deferred_symbols == ["KO"]
        monkeypatch.undo()
        assert view_count(warehouse, store) == written + len(late)
        compaction.compact_session(warehouse, store, SESSIONS[0])
        assert hot_count(warehouse) == 0 and view_count(warehouse, store) == written + len(late)
    finally:
        warehouse.dispose()


def test_a_missing_or_corrupt_file_is_named_and_the_rest_still_answer(
    sqlite_warehouse_url, tmp_path, instance
):
    warehouse, written = load(sqlite_warehouse_url)
    store = ColdStore(str(tmp_path / "history"))
    try:
        rows = [compaction.compact_session(warehouse, store, day).rows for day in SESSIONS]
        corrupt, missing = store.file_path(SESSIONS[0]), store.file_path(SESSIONS[1])
        with open(corrupt, "r+b") as handle:  # a torn write: the footer is gone
            handle.truncate(100)
        store.delete(missing)

        result = dg.materialize(
            [option_history, cold_files_readable],
            resources=resources(sqlite_warehouse_url, store),
            instance=instance,
            partition_key=SESSIONS[2].isoformat(),
            raise_on_error=False,
        )
        (evaluation,) = result.get_asset_check_evaluations()
        assert not evaluation.passed
        assert corrupt in evaluation.description and missing in evaluation.description

        env = {"DATABASE_URL": sqlite_warehouse_url, "VOLARIS_HISTORY_URL": store.url}
        (cold,) = [c for c in doctor.check_storage(env) if c.area == "storage cold"]
        assert cold.status is doctor.Status.FAIL
        assert corrupt in cold.detail and f"{missing}: missing" in cold.detail

        with open_history(warehouse, store) as history:
            assert sorted(history.problems) == sorted(
                [f"{missing}: missing", *[p for p in history.problems if corrupt in p]]
            )
            assert len(history.problems) == 2 and history.cold_files == 1
            left = history.sql("SELECT count(*) AS n FROM option_history")["n"].iloc[0]
        assert left == rows[2] and sum(rows) == written  # the good session still answers
        with pytest.raises(compaction.ColdFileError, match=corrupt):  # never overwritten blind
            warehouse.run_transaction(
                lambda c: warehouse.upsert(c, "option_snapshots", snapshot_rows(SESSIONS[0], 1))
            )
            compaction.compact_session(warehouse, store, SESSIONS[0])
        assert hot_count(warehouse) == len(snapshot_rows(SESSIONS[0], 1))  # stays hot
    finally:
        warehouse.dispose()


def test_an_object_store_url_goes_through_fsspec(sqlite_warehouse_url):
    """A URL store (fsspec's in-memory filesystem standing in for s3://): DuckDB writes, reads
    back and queries it through the registered filesystem; a full verification passes."""
    warehouse, written = load(sqlite_warehouse_url, SESSIONS[:1])
    store = ColdStore(f"memory://volaris-test-{uuid.uuid4().hex}/history")
    try:
        done = compaction.compact_session(warehouse, store, SESSIONS[0])
        assert done.rows == done.hot_rows_deleted == written and not store.local
        (manifest,) = store.manifests()
        assert manifest.path == store.file_path(SESSIONS[0]) and store.exists(manifest.path)
        assert store.verify(manifest, full=True) is None
        assert view_count(warehouse, store) == written
    finally:
        store.fs.rm(store.root, recursive=True)
        warehouse.dispose()


def test_loading_the_code_location_imports_neither_pyarrow_nor_duckdb():
    """pandas imports pyarrow eagerly when it is installed (~66 MB in every process) and DuckDB
    costs ~15 MB: only a run of the history assets may pay for DuckDB."""
    probe = (
        "import sys, volaris_assets.definitions; "
        "print(sorted(m for m in ('pyarrow', 'duckdb') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_retention_removes_only_rows_past_their_windows(warehouse_url, tmp_path, instance):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    now = datetime.now(calendar.UTC)
    old, new = now - timedelta(days=40), now - timedelta(days=1)
    result_row = {
        "asset": "option_chains", "partition": "p", "symbol": "AAPL", "status": "ok",
        "attempts": 1, "rows_written": 1, "rows_rejected": 0, "duration_ms": 5,
    }  # fmt: skip
    bar = {"symbol": "AAPL", "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1,
           "provider": "simulated"}  # fmt: skip

    def seed(conn):
        warehouse.upsert(conn, "sync_stock_results", [
            {**result_row, "run_id": "a", "recorded_at": old},
            {**result_row, "run_id": "b", "recorded_at": now - timedelta(days=8)},
            {**result_row, "run_id": "c", "recorded_at": new},
        ])  # fmt: skip
        warehouse.upsert(conn, "row_rejections", [
            {"run_id": "a", "asset": "x", "partition": "p", "symbol": "AAPL", "reason": "r",
             "count": 1, "recorded_at": old},
        ])  # fmt: skip
        warehouse.upsert(conn, "price_bars", [
            {**bar, "timeframe": "1m", "ts": old}, {**bar, "timeframe": "5m", "ts": old},
            {**bar, "timeframe": "1m", "ts": new}, {**bar, "timeframe": "1d", "ts": old},
        ])  # fmt: skip

    warehouse.run_transaction(seed)
    result = dg.materialize(
        [operational_retention],
        resources=resources(warehouse_url, ColdStore(str(tmp_path / "h"))),
        instance=instance,
    )
    meta = result.asset_materializations_for_node("operational_retention")[0].metadata
    assert {k: v.value for k, v in meta.items()} == {
        "removed_sync_stock_results": 2,  # 7 days kept here
        "removed_row_rejections": 1,
        "removed_intraday_bars": 2,
    }
    with warehouse.engine.connect() as conn:
        bars = conn.execute(sa.text("SELECT timeframe FROM price_bars ORDER BY timeframe")).all()
    assert [b[0] for b in bars] == ["1d", "1m"]
    warehouse.dispose()


def test_storage_report_sizes_both_tiers(warehouse_url, tmp_path):
    warehouse, written = load(warehouse_url, SESSIONS[:2])
    store = ColdStore(str(tmp_path / "history"))
    try:
        done = compaction.compact_session(warehouse, store, SESSIONS[0])
        report = measure(warehouse.engine, store)
        snaps = report.table("option_snapshots")
        assert snaps.rows == written - done.rows and snaps.bytes > 0
        assert report.cold_rows == done.rows and report.cold_bytes == done.bytes
        assert 0 < report.cold_bytes_per_row < snaps.bytes_per_row
        assert report.problems == [] and report.cold_sessions == 1
    finally:
        warehouse.dispose()


@pytest.mark.parametrize(
    ("hot_sessions", "tick", "expected"),
    [
        (1, datetime(2026, 11, 24, 23, 0, tzinfo=calendar.UTC), "2026-11-24"),  # 18:00 ET
        (2, datetime(2026, 11, 24, 23, 0, tzinfo=calendar.UTC), "2026-11-23"),
        (3, datetime(2026, 11, 24, 23, 0, tzinfo=calendar.UTC), "2026-11-20"),  # over a weekend
        (1, datetime(2026, 11, 24, 20, 0, tzinfo=calendar.UTC), None),  # 15:00 ET: still open
        (1, datetime(2026, 11, 26, 23, 0, tzinfo=calendar.UTC), None),  # Thanksgiving
    ],
)
def test_the_schedule_compacts_the_session_leaving_the_hot_window(hot_sessions, tick, expected):
    assert history_definitions.session_leaving_hot_window(hot_sessions)(tick) == expected


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("VOLARIS_HISTORY_URL", "ftp://host/path", "is not one of"),
        ("VOLARIS_HISTORY_URL", "s3://key:hunter2@bucket/x", "carries credentials"),
        ("VOLARIS_HOT_SESSIONS", "0", "greater than or equal to 1"),
        ("VOLARIS_HISTORY_TIME", "15:30", "before 16:00"),
        ("VOLARIS_RETAIN_RESULTS_DAYS", "0", "greater than or equal to 1"),
        ("VOLARIS_RETAIN_REJECTIONS_DAYS", "ten", "valid integer"),
        ("VOLARIS_RETAIN_INTRADAY_DAYS", "4000", "less than or equal to 3650"),
    ],
)
def test_a_bad_storage_setting_is_one_problem_without_its_secret(variable, value, reason):
    (problem,) = settings.problems({variable: value})
    assert problem.variable == variable and reason in problem.reason
    assert "hunter2" not in problem.line()


def test_an_object_store_without_its_filesystem_package_is_refused_by_name(monkeypatch):
    from volaris_assets.history import locations

    monkeypatch.setitem(locations.FILESYSTEM_PACKAGES, "s3", "volaris_absent_s3_package")
    (problem,) = settings.problems({"VOLARIS_HISTORY_URL": "s3://bucket/prefix"})
    assert "s3:// needs the volaris_absent_s3_package package" in problem.reason
    monkeypatch.setitem(locations.FILESYSTEM_PACKAGES, "s3", "fsspec")  # installed: accepted
    assert settings.problems({"VOLARIS_HISTORY_URL": "s3://bucket/prefix"}) == []


def test_iv_metrics_remeasures_a_compacted_session_from_the_cold_tier(
    warehouse_url, small_universe, instance, tmp_path
):
    """Once a session has left the hot window, its last snapshot is read from its Parquet file:
    re-running iv_metrics for it measures the same chain, not a provider's replay."""
    from volaris_assets.options.assets import option_chains
    from volaris_assets.universe.assets import sp500_constituents
    from volaris_assets.volatility.assets import iv_metrics, stored_close_chain
    from volaris_assets_tests.pipeline_support import resources as pipeline_resources

    store = ColdStore(str(tmp_path / "history"))
    res = {**pipeline_resources(warehouse_url), "history": HistoryResource(url=store.url)}
    session = calendar.session(SESSIONS[-1])
    key, snapshot = session.day.isoformat(), f"{session.day.isoformat()}-15:45"

    def run(assets: list, partition: str | None = None) -> None:
        assert dg.materialize(assets, partition_key=partition, resources=res, instance=instance)

    def measured() -> pd.DataFrame:
        return warehouse.read_frame("SELECT * FROM iv_metrics ORDER BY symbol").set_index("symbol")

    warehouse = Warehouse(warehouse_url)
    try:
        run([sp500_constituents])
        run([option_chains], snapshot)
        run([iv_metrics], key)
        before = measured()
        run([option_history], key)
        assert hot_count(warehouse, session.day) == 0

        assert stored_close_chain(warehouse, "AAPL", session).empty  # hot only: gone
        cold = stored_close_chain(warehouse, "AAPL", session, store)
        assert len(cold) > 50 and set(cold["symbol"]) == {"AAPL"}
        stamps = pd.to_datetime(cold["snapshot_ts"], utc=True).unique()
        assert list(stamps) == [pd.Timestamp(calendar.snapshot_instant(snapshot))]

        run([iv_metrics], key)
        after = measured()
        assert list(after.index) == list(before.index) == sorted(small_universe)
        for column in ("atm_iv_30d", "iv_30d", "underlying_price", "expected_move"):
            pd.testing.assert_series_equal(
                after[column].astype(float), before[column].astype(float), rtol=1e-5
            )
        assert (after["provider"] == before["provider"]).all()

        # A morning window fetched again after compaction is hot; the close is still the file's.
        run([option_chains], f"{key}-10:00")
        assert hot_count(warehouse, session.day) > 0
        close = stored_close_chain(warehouse, "AAPL", session, store)
        assert list(pd.to_datetime(close["snapshot_ts"], utc=True).unique()) == list(stamps)

        # The file lost: the run fails naming it, and nothing is re-measured from a replay.
        Path(store.file_path(session.day)).unlink()
        lost = dg.materialize(
            [iv_metrics], partition_key=key, resources=res, instance=instance, raise_on_error=False
        )
        assert not lost.success
        failure = lost.get_step_failure_events()[0].step_failure_data.error
        assert "cannot be read" in failure.message and "missing" in failure.message
        pd.testing.assert_frame_equal(measured(), after)
    finally:
        warehouse.dispose()


def test_a_window_fetched_again_after_compaction_replaces_its_snapshot_in_both_tiers(
    warehouse_url, tmp_path
):
    """A symbol's snapshot is one provider's chain. Fetched again after its session was
    compacted, the new chain (here a provider listing fewer contracts) is what the view reads
    and what the next compaction keeps: none of the old chain's other contracts stay beside it."""
    warehouse, written = load(warehouse_url, SESSIONS[:1])
    store = ColdStore(str(tmp_path / "history"))
    rows = snapshot_rows(SESSIONS[0])
    first_time = rows["snapshot_ts"].min()
    is_refetched = (rows["symbol"] == "KO") & (rows["snapshot_ts"] == first_time)
    refetched = rows[is_refetched].iloc[::2].assign(provider="schwab")
    try:
        compaction.compact_session(warehouse, store, SESSIONS[0])
        warehouse.run_transaction(lambda c: warehouse.upsert(c, "option_snapshots", refetched))
        expected = written - is_refetched.sum() + len(refetched)

        def ko_at_first_time() -> pd.DataFrame:
            with open_history(warehouse, store, symbols=["KO"]) as history:
                return history.sql(
                    "SELECT provider, count(*) AS n FROM option_history WHERE snapshot_ts = ? "
                    "GROUP BY provider",
                    [first_time.to_pydatetime()],
                )

        assert view_count(warehouse, store) == expected
        assert ko_at_first_time().to_dict("records") == [
            {"provider": "schwab", "n": len(refetched)}
        ]
        again = compaction.compact_session(warehouse, store, SESSIONS[0])
        assert again.rows == expected and hot_count(warehouse) == 0
        assert view_count(warehouse, store) == expected
        assert ko_at_first_time().to_dict("records") == [
            {"provider": "schwab", "n": len(refetched)}
        ]
    finally:
        warehouse.dispose()


def test_a_cold_tier_that_cannot_be_written_fails_by_its_path_and_keeps_the_hot_rows(
    warehouse_url, tmp_path, instance
):
    """A cold tier the OS refuses (here a directory under a file; a full disk or a read-only
    mount fail the same way) is named as the cold tier, not as a database failure."""
    warehouse, written = load(warehouse_url, SESSIONS[:1])
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = ColdStore(str(blocker / "history"))
    try:
        result = dg.materialize(
            [option_history],
            partition_key=SESSIONS[0].isoformat(),
            resources=resources(warehouse_url, store),
            instance=instance,
            raise_on_error=False,
        )
        assert not result.success
        message = result.get_step_failure_events()[0].step_failure_data.error.message
        assert f"Compacting {SESSIONS[0]} stopped" in message and str(blocker) in message
        assert "database" not in message.lower()
        assert hot_count(warehouse) == written
    finally:
        warehouse.dispose()


def test_a_cold_store_made_without_a_url_reads_the_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("VOLARIS_HISTORY_URL", f" {tmp_path / 'cold'}\n")
    assert ColdStore().root == str(tmp_path / "cold")


def test_a_local_history_directory_is_shown_and_an_object_store_url_keeps_its_masking():
    """A directory holds no credentials: masking it hid which file an error was about."""
    path = f"/srv/volaris-history-{uuid.uuid4().hex}"
    assert settings.problems({"VOLARIS_HISTORY_URL": path}) == []
    assert (
        redaction.redact(f"{path}/_manifests/x.json: missing")
        == f"{path}/_manifests/x.json: missing"
    )
    (problem,) = settings.problems({"VOLARIS_HISTORY_URL": "s3://key:hunter2@bucket/x"})
    assert "hunter2" not in problem.line() and "hunter2" not in redaction.redact("s3 hunter2")


def test_compacting_again_a_session_whose_file_is_gone_fails_by_name(
    sqlite_warehouse_url, tmp_path
):
    """Nothing hot is left to write the file from: the run says the file is missing instead of
    reporting the manifest's rows as compacted (before: success, from the manifest alone)."""
    warehouse, _ = load(sqlite_warehouse_url, SESSIONS[:1])
    store = ColdStore(str(tmp_path / "history"))
    try:
        compaction.compact_session(warehouse, store, SESSIONS[0])
        Path(store.file_path(SESSIONS[0])).unlink()
        with pytest.raises(compaction.ColdFileError, match="missing"):
            compaction.compact_session(warehouse, store, SESSIONS[0])
    finally:
        warehouse.dispose()
