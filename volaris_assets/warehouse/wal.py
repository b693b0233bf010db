"""Switching a SQLite file to write-ahead logging when other processes may be opening it too."""

from __future__ import annotations

import sqlite3
import time

_RETRY_S = 0.01


def use_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    """`PRAGMA journal_mode=WAL` on `conn`, waiting up to `timeout_s` for a racing process.

    SQLite answers this pragma "database is locked" at once, without calling the busy handler
    the connection's timeout sets, while another connection is converting the same new file:
    four processes opening a fresh file together, 40 files, failed 5 of the 160 opens. Every other
    statement waits for the lock; this one is retried here so that it does too. Any other
    error (a read-only file, a corrupt one) is raised as it is.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        cursor = conn.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
        finally:
            cursor.close()
        time.sleep(_RETRY_S)
