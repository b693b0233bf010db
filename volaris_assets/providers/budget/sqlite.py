"""The budget in a SQLite file: shared by every process on one host.

The embedded default (no PostgreSQL, no Redis), and the first fallback of the other two. Each
reservation is one `BEGIN IMMEDIATE` transaction, which takes the file's write lock before it
reads, so no other process can read the row in between; inside it `gcra.reserve` runs as is
rather than as a SQL copy of itself. The lock is held for a few microseconds (no network, no
fsync: WAL with synchronous=NORMAL syncs at checkpoints only, and losing the last few
reservations to a power cut costs one burst at most). The clock is the host's wall clock, the
one every process on the host reads.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from volaris_assets.providers.budget.gcra import Cell, Grant, Limit, reserve
from volaris_assets.providers.budget.store import Stored
from volaris_assets.warehouse.wal import use_wal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS provider_budget (
    provider TEXT PRIMARY KEY,
    tat REAL NOT NULL DEFAULT 0,
    paused_until REAL NOT NULL DEFAULT 0,
    rate REAL,
    burst REAL,
    minute INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0,
    reserved_before INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL DEFAULT 0
)
"""
_CELL = "tat, paused_until, minute, reserved, reserved_before"
_WRITE = f"""
INSERT INTO provider_budget (provider, rate, burst, updated_at, {_CELL})
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (provider) DO UPDATE SET
    rate = excluded.rate, burst = excluded.burst, updated_at = excluded.updated_at,
    tat = excluded.tat, paused_until = excluded.paused_until, minute = excluded.minute,
    reserved = excluded.reserved, reserved_before = excluded.reserved_before
"""
_PAUSE = """
INSERT INTO provider_budget (provider, paused_until, updated_at) VALUES (?, ?, ?)
ON CONFLICT (provider) DO UPDATE SET
    paused_until = max(paused_until, excluded.paused_until), updated_at = excluded.updated_at
RETURNING paused_until
"""
T = TypeVar("T")


class SqliteStore:
    """The budget table in the SQLite file at `path` (created, with its folder, on first use).

    `timeout_s` bounds the wait for another process's write lock: past it the call fails and
    the budget falls back (a lock held that long means a process hung inside the transaction).
    """

    kind = "sqlite"

    def __init__(
        self, path: Path, *, timeout_s: float = 2.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = path
        self.where = str(path)
        self._timeout_s = timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    def reserve(self, provider: str, limit: Limit, max_wait: float | None) -> Grant:
        def work(conn: sqlite3.Connection) -> Grant:
            stored = self._read(conn, provider)
            cell = stored.cell if stored else Cell()
            now = self._clock()
            grant = reserve(cell, now, limit, max_wait)
            if grant.admitted:
                self._write(conn, provider, limit, cell, now)
            return grant

        return self._transaction(work)

    def pause(self, provider: str, seconds: float) -> float:
        with self._lock:
            now = self._clock()
            params = (provider, now + seconds, now)
            return self._connection().execute(_PAUSE, params).fetchone()[0]

    def paused_until(self, provider: str) -> float:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT paused_until FROM provider_budget WHERE provider = ?", (provider,))
                .fetchone()
            )
        return row[0] if row else 0.0

    def cells(self) -> tuple[float, list[Stored]]:
        """Reads only (the doctor changes nothing): no file yet means nothing reserved yet."""
        if self._conn is None and not self.path.is_file():
            return self._clock(), []
        with self._lock:
            rows = self._connection().execute("SELECT provider FROM provider_budget").fetchall()
            found = [self._read(self._connection(), provider) for (provider,) in rows]
        return self._clock(), [stored for stored in found if stored is not None]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self._timeout_s, isolation_level=None, check_same_thread=False
            )
            try:
                use_wal(conn, self._timeout_s)
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.execute(_SCHEMA)
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        return self._conn

    @staticmethod
    def _read(conn: sqlite3.Connection, provider: str) -> Stored | None:
        row = conn.execute(
            f"SELECT rate, burst, {_CELL} FROM provider_budget WHERE provider = ?", (provider,)
        ).fetchone()
        if row is None:
            return None
        rate, burst, tat, paused_until, minute, reserved, reserved_before = row
        limit = Limit(rate, burst) if rate is not None else None
        return Stored(provider, limit, Cell(tat, paused_until, minute, reserved, reserved_before))

    @staticmethod
    def _write(
        conn: sqlite3.Connection, provider: str, limit: Limit, cell: Cell, now: float
    ) -> None:
        conn.execute(
            _WRITE,
            (provider, limit.rate, limit.burst, now, cell.tat, cell.paused_until, cell.minute,
             cell.reserved, cell.reserved_before),
        )  # fmt: skip
