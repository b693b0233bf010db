"""The budget in the warehouse's PostgreSQL: shared by every process on every host.

One statement per reservation: it locks the provider's row, reads the server's clock once the
lock is held (`clock_timestamp()`, not the client's: hosts with skewed clocks then agree),
applies `gcra.reserve` written in SQL and writes the row back, all in one round trip, with the
row lock held for the statement only. It goes through SQLAlchemy and psycopg2 like the rest of
the warehouse, on an engine of its own with short timeouts: a server that does not answer
within `timeout_s` (connect, lock or statement) fails the call and the budget falls back,
rather than holding a request for the 10 s the warehouse allows itself. Needs PostgreSQL 12 or
later (`MATERIALIZED`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets.providers.budget.gcra import Cell, Grant, Limit
from volaris_assets.providers.budget.store import Stored
from volaris_assets.warehouse.urls import normalize_url

T = TypeVar("T")
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    provider text PRIMARY KEY,
    tat double precision NOT NULL DEFAULT 0,
    paused_until double precision NOT NULL DEFAULT 0,
    rate double precision,
    burst double precision,
    minute bigint NOT NULL DEFAULT 0,
    reserved bigint NOT NULL DEFAULT 0,
    reserved_before bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT clock_timestamp()
)
"""
_ENSURE = "INSERT INTO {table} (provider) VALUES (:provider) ON CONFLICT DO NOTHING"
# gcra.reserve and gcra.count in SQL. `timed` is MATERIALIZED so that the clock is read once,
# after FOR UPDATE has the row, whatever the planner does with the rest.
_RESERVE = """
WITH locked AS (
    SELECT provider, tat, paused_until, minute, reserved, reserved_before
    FROM {table} WHERE provider = :provider FOR UPDATE
), timed AS MATERIALIZED (
    SELECT locked.*, extract(epoch FROM clock_timestamp())::float8 AS now FROM locked
), started AS (
    SELECT timed.*, greatest(tat, now, paused_until + :head_start) AS start,
           floor(now / 60)::bigint AS this_minute
    FROM timed
), graded AS (
    SELECT started.*, greatest(0.0, start - now - :head_start) AS wait FROM started
), verdict AS (
    SELECT graded.*, (CAST(:max_wait AS float8) IS NULL OR wait <= :max_wait) AS admitted
    FROM graded
), written AS (
    UPDATE {table} AS b SET
        tat = v.start + :interval,
        rate = :rate,
        burst = :burst,
        minute = v.this_minute,
        reserved_before = CASE WHEN v.this_minute = v.minute THEN v.reserved_before
                               WHEN v.this_minute = v.minute + 1 THEN v.reserved
                               ELSE 0 END,
        reserved = CASE WHEN v.this_minute = v.minute THEN v.reserved + 1 ELSE 1 END,
        updated_at = clock_timestamp()
    FROM verdict AS v
    WHERE b.provider = v.provider AND v.admitted
)
SELECT admitted, answer, now + answer FROM (
    SELECT admitted, now, CASE WHEN admitted THEN wait ELSE wait - :max_wait END AS answer
    FROM verdict
) answered
"""
_PAUSE = """
UPDATE {table} SET
    paused_until = greatest(paused_until, extract(epoch FROM clock_timestamp()) + :seconds),
    updated_at = clock_timestamp()
WHERE provider = :provider
RETURNING paused_until
"""
_PAUSED_UNTIL = "SELECT paused_until FROM {table} WHERE provider = :provider"
_CELLS = """
SELECT provider, rate, burst, tat, paused_until, minute, reserved, reserved_before,
       extract(epoch FROM clock_timestamp())::float8
FROM {table}
"""

_EXISTS = sa.text("SELECT to_regclass(:table)")
_NOW = sa.text("SELECT extract(epoch FROM clock_timestamp())::float8")


class PostgresStore:
    """The budget table `table` in the database at `url` (a DATABASE_URL; created on first use).

    `where` names host, port and database, never the password.
    """

    kind = "postgresql"

    def __init__(self, url: str, *, table: str = "provider_budget", timeout_s: float = 2.0) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise ValueError(f"budget table name must be a plain lowercase identifier: {table!r}")
        parsed = sa.make_url(normalize_url(url))
        self.where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"
        self._sql = {
            name: sa.text(statement.format(table=table))
            for name, statement in {
                "ensure": _ENSURE,
                "reserve": _RESERVE,
                "pause": _PAUSE,
                "paused_until": _PAUSED_UNTIL,
                "cells": _CELLS,
            }.items()
        }
        self._schema = sa.text(_SCHEMA.format(table=table))
        self._table = table
        milliseconds = int(timeout_s * 1000)
        connect_args: dict[str, Any] = {
            # libpq counts whole seconds and takes anything below 2 as 2.
            "connect_timeout": max(2, math.ceil(timeout_s)),
            # A reservation lost to a server crash costs one burst at most; waiting for the WAL
            # flush at each commit costs 1-4 ms per request on the test server (a one-row
            # UPDATE per commit: 255/s with the flush, 1,333/s without).
            "options": (
                f"-c lock_timeout={milliseconds} -c statement_timeout={milliseconds} "
                "-c synchronous_commit=off"
            ),
        }
        self._engine = sa.create_engine(
            parsed,
            connect_args={k: v for k, v in connect_args.items() if k not in parsed.query},
            pool_size=1,
            max_overflow=1,
            pool_timeout=timeout_s,
            pool_recycle=300,
        )
        self._ready: set[str] = set()
        self._created = False

    def reserve(self, provider: str, limit: Limit, max_wait: float | None) -> Grant:
        params = {
            "provider": provider,
            "rate": limit.rate,
            "burst": limit.burst,
            "interval": limit.interval,
            "head_start": limit.head_start,
            "max_wait": max_wait,
        }
        row = self._on_row(provider, lambda conn: conn.execute(self._sql["reserve"], params))
        admitted, wait, due = row
        return Grant(admitted=admitted, wait=wait, due=due)

    def pause(self, provider: str, seconds: float) -> float:
        params = {"provider": provider, "seconds": seconds}
        return self._on_row(provider, lambda conn: conn.execute(self._sql["pause"], params))[0]

    def paused_until(self, provider: str) -> float:
        sql = self._sql["paused_until"]
        row = self._run(lambda conn: conn.execute(sql, {"provider": provider}).first())
        return row[0] if row else 0.0

    def cells(self) -> tuple[float, list[Stored]]:
        """Reads only (the doctor changes nothing): no table yet means nothing reserved yet."""

        def read(conn: Connection) -> tuple[list[sa.Row], float]:
            if conn.execute(_EXISTS, {"table": self._table}).scalar() is None:
                return [], conn.execute(_NOW).scalar_one()
            rows = conn.execute(self._sql["cells"]).all()
            return rows, rows[0][-1] if rows else conn.execute(_NOW).scalar_one()

        rows, now = self._run(read)
        found = [
            Stored(provider, Limit(rate, burst) if rate is not None else None, Cell(*cell))
            for provider, rate, burst, *cell, _ in rows
        ]
        return now, found

    def close(self) -> None:
        self._engine.dispose()

    def _on_row(self, provider: str, statement: Callable[[Connection], sa.Result]) -> sa.Row:
        """The one row `statement` returns for `provider`, creating the table and the row when
        missing (first use, or a table someone emptied)."""
        if provider in self._ready:
            row = self._run(lambda conn: statement(conn).first())
            if row is not None:
                return row
        self._create_table()
        self._run(lambda conn: conn.execute(self._sql["ensure"], {"provider": provider}))
        self._ready.add(provider)
        return self._run(lambda conn: statement(conn).one())

    def _create_table(self) -> None:
        if not self._created:
            self._run(self._create)
            self._created = True

    def _create(self, conn: Connection) -> None:
        # Two processes creating the table at once would race on the catalog.
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:t))"), {"t": self._table})
        conn.execute(self._schema)

    def _run(self, work: Callable[[Connection], T]) -> T:
        """`work` in one transaction, run once more on a fresh connection when the pooled one
        had died (a server restart), so that a restart costs a retry rather than a fallback."""
        try:
            return self._once(work)
        except sa.exc.DBAPIError as error:
            if not error.connection_invalidated:
                raise
        return self._once(work)

    def _once(self, work: Callable[[Connection], T]) -> T:
        try:
            with self._engine.begin() as conn:
                return work(conn)
        except Exception:
            # Check the table and the rows again on next use: one may have been dropped.
            self._created, self._ready = False, set()
            raise
