"""Processes that open one new SQLite file at the same instant all get in.

A fresh install starts the daemon, its runs and the doctor together, and each opens the
budget file and the warehouse for the first time; SQLite refuses `PRAGMA journal_mode=WAL`
at once ("database is locked") to a process that races another one converting the file. Each
trial here opens a new file from eight processes released together; before `use_wal`, 20 such
trials of the budget store had 6 failed opens.
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from volaris_assets.providers.budget.gcra import Limit
from volaris_assets.providers.budget.sqlite import SqliteStore
from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.wal import use_wal

PROCESSES = 8
TRIALS = 15


def _raw(path: Path) -> None:
    conn = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    use_wal(conn, 2.0)
    conn.execute("CREATE TABLE IF NOT EXISTS t (a INTEGER)")
    conn.close()


def _budget(path: Path) -> None:
    store = SqliteStore(path)
    store.reserve("acct", Limit(1000.0, 10.0), None)
    store.close()


def _warehouse(path: Path) -> None:
    warehouse = Warehouse(f"sqlite:///{path}")
    with warehouse.engine.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    warehouse.dispose()


def _opener(open_file: Callable[[Path], None], path: Path, start, failures) -> None:
    start.wait()
    try:
        open_file(path)
    except Exception as error:  # noqa: BLE001 - what failed is the assertion's message
        failures.put(f"{type(error).__name__}: {error}")


def _failures_opening_together(open_file: Callable[[Path], None], folder: Path) -> list[str]:
    context = multiprocessing.get_context("fork")
    failures = context.Queue()
    for trial in range(TRIALS):
        start = context.Barrier(PROCESSES)
        path = folder / f"trial{trial}.db"
        processes = [
            context.Process(target=_opener, args=(open_file, path, start, failures))
            for _ in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=30)
            assert process.exitcode == 0
    found = []
    while not failures.empty():
        found.append(failures.get())
    return found


@pytest.mark.parametrize(
    "open_file", [_raw, _budget, _warehouse], ids=["wal", "budget", "warehouse"]
)
def test_processes_opening_a_new_file_together_all_get_in(open_file, tmp_path):
    assert _failures_opening_together(open_file, tmp_path) == []


def test_other_errors_are_not_waited_out(tmp_path):
    """Only a lock is waited for: a file that is not a database fails at once."""
    path = tmp_path / "not.db"
    path.write_bytes(b"this is not a database file" * 100)
    conn = sqlite3.connect(path, timeout=2.0, isolation_level=None)
    started = time.monotonic()
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        use_wal(conn, 30.0)
    conn.close()
    assert time.monotonic() - started < 1.0
