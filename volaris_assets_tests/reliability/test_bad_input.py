"""Hostile input: a universe file written by an attacker (or a careless spreadsheet), and run
config no run should accept. Bad entries are refused and counted, good ones kept; bad config
fails the run with a message naming the problem, before anything is written."""

from __future__ import annotations

import itertools
import string
from collections import Counter

import dagster as dg
import pytest

from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.universe.constituents import MAX_UNIVERSE
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources
from volaris_assets_tests.reliability.market_setup import SESSION, SNAPSHOT, materialize_universe
from volaris_assets_tests.reliability.warehouse_state import row_counts, warehouse_state

HOSTILE_ENTRIES = [
    "'; DROP TABLE tickers;--",
    "AAPL'); DELETE FROM sync_stock_results; --",
    "1 OR 1=1",
    "ÄPFEL",
    "日本株",
    "\N{LATIN SMALL LIGATURE FI}",  # upper-cases to FI, a real ticker: must not become one
    "stra\N{LATIN SMALL LETTER SHARP S}e",
    "\u0000NUL",
    "TOOLONGTICKER",
]
# Valid, in the file's own spelling, and what each becomes.
GOOD_ENTRIES = {"aapl": "AAPL", " msft ": "MSFT", "brk-b": "BRK.B", "BF/B": "BF.B"}
DUPLICATES = ["AAPL", "Aapl", "BRK.B", "msft"]
EMPTY_LINES = 3
BULK = 10_000


def bulk_symbols(count: int) -> list[str]:
    """`count` distinct valid tickers that no real index contains (Q + three letters)."""
    letters = itertools.product(string.ascii_uppercase, repeat=3)
    return ["Q" + "".join(next(letters)) for _ in range(count)]


def hostile_file(tmp_path) -> tuple[str, list[str]]:
    """The CSV and the symbols it should yield, in order."""
    lines = ["symbol", *GOOD_ENTRIES, *HOSTILE_ENTRIES, *[""] * EMPTY_LINES, *DUPLICATES]
    bulk = bulk_symbols(BULK)
    path = tmp_path / "universe.csv"
    path.write_text("\n".join(lines + bulk) + "\n", encoding="utf-8")
    valid = list(GOOD_ENTRIES.values()) + bulk
    return str(path), valid[:MAX_UNIVERSE]


def test_hostile_universe_file_keeps_the_valid_and_counts_the_rest(
    scratch_db, tmp_path, instance, monkeypatch
):
    path, expected = hostile_file(tmp_path)
    monkeypatch.setenv("VOLARIS_UNIVERSE", path)
    result = dg.materialize(
        [sp500_constituents], resources=resources(scratch_db), instance=instance
    )
    assert result.success

    warehouse = Warehouse(scratch_db)
    try:
        stored = warehouse.read_frame("SELECT symbol FROM tickers")["symbol"]
        rejections = warehouse.read_frame(
            "SELECT reason, count FROM row_rejections WHERE run_id = :run", run=result.run_id
        )
    finally:
        warehouse.dispose()
    assert sorted(stored) == sorted(expected)
    assert stored.is_unique
    counted = Counter(dict(zip(rejections["reason"], rejections["count"], strict=True)))
    assert counted == Counter(
        invalid_symbol=len(HOSTILE_ENTRIES),
        empty=EMPTY_LINES,
        duplicate=len(DUPLICATES),
        over_limit=len(GOOD_ENTRIES) + BULK - MAX_UNIVERSE,
    )
    # The SQL in the file was data, never statements: every table is still there.
    assert set(row_counts(scratch_db)) >= {"tickers", "sync_stock_results", "row_rejections"}


BAD_RUNS = [
    pytest.param(
        [option_chains],
        SNAPSHOT,
        {"ops": {"option_chains": {"config": {"symbols": ["ZZZZ", "'; DROP TABLE tickers;--"]}}}},
        ["ZZZZ is not in the S&P 500 universe (asset sp500_constituents)", "not a US ticker"],
        id="unknown-and-hostile-symbols",
    ),
    pytest.param(
        [wheel_premiums],
        SESSION,
        {"ops": {"wheel_premiums": {"config": {"delta_min": -0.15, "delta_max": -0.35}}}},
        ["invalid wheel scan config", "delta_min < delta_max"],
        id="inverted-delta-band",
    ),
    pytest.param(
        [wheel_premiums],
        SESSION,
        {"ops": {"wheel_premiums": {"config": {"delta_min": -1.5, "delta_max": -0.2}}}},
        ["invalid wheel scan config", "-1 <= delta_min"],
        id="delta-below-minus-one",
    ),
    pytest.param(
        [wheel_premiums],
        SESSION,
        {"ops": {"wheel_premiums": {"config": {"delta_min": 0.15, "delta_max": 0.35}}}},
        ["invalid wheel scan config", "<= 0 for puts"],
        id="call-deltas-for-puts",
    ),
]


@pytest.mark.parametrize(("assets", "partition", "run_config", "messages"), BAD_RUNS)
def test_bad_run_config_fails_clearly_and_writes_nothing(
    assets, partition, run_config, messages, scratch_db, instance
):
    assert materialize_universe(scratch_db, ["AAPL", "MSFT"], instance).success
    before = (row_counts(scratch_db), warehouse_state(scratch_db))

    result = dg.materialize(
        assets,
        partition_key=partition,
        resources=resources(scratch_db),
        instance=instance,
        run_config=run_config,
        raise_on_error=False,
    )

    assert not result.success
    failure = result.get_step_failure_events()[0].step_failure_data.error
    text = failure.message if failure.cause is None else failure.message + failure.cause.message
    for message in messages:
        assert message in text, text
    after = (row_counts(scratch_db), warehouse_state(scratch_db))
    assert after[0] == before[0]
    for table, frame in before[1].items():
        assert frame.equals(after[1][table]), table


OUTSIDE_THE_CALENDAR = [
    ([daily_bars], "2026-03-14"),  # a Saturday
    ([daily_bars], "2026-12-25"),  # Christmas
    ([daily_bars], "1999-01-04"),  # before the first partition
    ([option_chains], "2026-03-11-17:00"),  # after the close
    ([option_chains], "2026-11-27-13:15"),  # after an early close
]


def test_partitions_outside_the_calendar_are_refused(scratch_db, instance):
    assert materialize_universe(scratch_db, ["AAPL"], instance).success
    before = row_counts(scratch_db)
    for assets, partition in OUTSIDE_THE_CALENDAR:
        with pytest.raises(dg.DagsterError, match=partition):
            dg.materialize(
                assets, partition_key=partition, resources=resources(scratch_db), instance=instance
            )
    assert row_counts(scratch_db) == before
