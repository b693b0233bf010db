"""Move one session's option snapshots from the hot table to its cold Parquet file.

The order is what makes a crash anywhere lose nothing: read the hot rows (and the session's
existing file, if an earlier run or a run during the session wrote one), write them merged to a
temporary file, read that file back and compare its row count and key checksum with what was
written, publish it by an atomic rename, record the manifest, and only then delete hot rows,
one symbol per transaction, each delete checked against the keys read for that symbol. A crash
before the rename leaves the hot rows and a temporary file the next run discards; after it, the
next run merges the file with the still-hot rows (the same keys, kept once) and deletes them.
A symbol whose hot rows changed while the file was written (a snapshot written meanwhile) keeps
them, rolled back, for the next run: counted as deferred, never deleted unread.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as clock

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets import calendar
from volaris_assets.history.cold import (
    COLUMN_DDL,
    ORDER,
    SNAPSHOT_KEY,
    ColdFileError,
    ColdStore,
    Manifest,
    insert_frame,
    key_checksum,
    key_hashes,
    naming,
)
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

_SNAPS = tables.option_snapshots
# What the staging database may hold in memory before it spills to its file.
STAGING_MEMORY = "256MB"


class VerificationFailed(Exception):
    """The file read back is not what was written; nothing was published or deleted."""


@dataclass
class Compaction:
    """What one session's compaction did."""

    session: date
    rows: int = 0
    hot_rows_read: int = 0
    rows_from_file: int = 0
    hot_rows_deleted: int = 0
    deferred_symbols: list[str] = field(default_factory=list)
    bytes: int = 0
    symbols: int = 0
    seconds: float = 0.0
    manifest: Manifest | None = None

    @property
    def bytes_per_row(self) -> float:
        return self.bytes / self.rows if self.rows else 0.0


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants of midnight ET starting and ending `day`: every snapshot of its session."""
    start = datetime.combine(day, clock(0), calendar.NY)
    return start.astimezone(calendar.UTC), (start + timedelta(days=1)).astimezone(calendar.UTC)


def compact_session(warehouse: Warehouse, store: ColdStore, day: date) -> Compaction:
    """Compact `day`'s snapshots into its cold file and delete the verified hot rows."""
    started = time.perf_counter()
    result = Compaction(session=day)
    store.discard_temporaries(day)
    lo, hi = day_bounds(day)
    final = store.file_path(day)
    has_file = store.exists(final)
    hot_symbols = _hot_symbols(warehouse, lo, hi)
    if not hot_symbols:  # already compacted (or nothing was taken): the file stands
        result.manifest = _current_manifest(store, day)
        if result.manifest is not None:
            if problem := store.verify(result.manifest):  # nothing hot to write it again from
                raise ColdFileError(problem)
            result.rows, result.bytes = result.manifest.rows, result.manifest.bytes
            result.symbols = result.manifest.symbols
        result.seconds = time.perf_counter() - started
        return result
    hot_keys: dict[str, tuple[int, int]] = {}
    # Staged in a DuckDB database on local disk: its buffer manager spills there, so memory
    # holds one symbol's hot rows and a bounded buffer, never the session.
    with (
        tempfile.TemporaryDirectory(prefix="volaris-compaction-") as work,
        store.connect(f"{work}/staged.duckdb") as con,
    ):
        staging = f"{work}/staged.duckdb"  # a full local disk fails here, by this name
        with naming(staging):
            con.execute(f"SET memory_limit = '{STAGING_MEMORY}'")
            con.execute(f"CREATE TABLE staged ({COLUMN_DDL})")
        for symbol in sorted(hot_symbols):
            hot = warehouse.read_frame(
                sa.select(_SNAPS).where(_SNAPS.c.symbol == symbol, _in_day(warehouse, lo, hi))
            )
            hot_keys[symbol] = (len(hot), key_hashes(hot["occ_symbol"], hot["snapshot_ts"]))
            result.hot_rows_read += len(hot)
            with naming(staging):
                insert_frame(con, "staged", hot)
        if has_file:  # the file's snapshots that are not hot (a hot one is the newer)
            with naming(final):
                source = store.parquet(final)
                (result.rows_from_file,) = con.execute(f"SELECT count(*) FROM {source}").fetchone()
                con.execute(
                    f"INSERT INTO staged SELECT f.* FROM {source} f "
                    f"ANTI JOIN staged USING ({SNAPSHOT_KEY})"
                )
        with naming(staging):
            result.rows, written = key_checksum(con, "staged")
            (result.symbols,) = con.execute("SELECT count(DISTINCT symbol) FROM staged").fetchone()
        temp = store.temp_path(day)
        store.write(con, f"SELECT * FROM staged ORDER BY {ORDER}", temp)
        try:
            rows, read_back = store.read_back(temp, con)
            if rows != result.rows or read_back != written:
                raise VerificationFailed(
                    f"{temp}: read back {rows} rows (checksum {read_back:016x}), wrote "
                    f"{result.rows} (checksum {written:016x}); nothing published or deleted"
                )
        except (ColdFileError, VerificationFailed):
            store.delete(temp)
            raise
    store.publish(temp, day)
    result.bytes = store.size(final)
    result.manifest = Manifest(
        session=day.isoformat(),
        path=final,
        rows=result.rows,
        key_checksum=f"{written:016x}",
        bytes=result.bytes,
        symbols=result.symbols,
    )
    store.write_manifest(result.manifest)
    for symbol in sorted(hot_keys):
        deleted = _delete_verified(warehouse, symbol, lo, hi, hot_keys[symbol])
        if deleted is None:
            result.deferred_symbols.append(symbol)
        else:
            result.hot_rows_deleted += deleted
    result.seconds = time.perf_counter() - started
    return result


def _hot_symbols(warehouse: Warehouse, lo: datetime, hi: datetime) -> set[str]:
    query = sa.select(_SNAPS.c.symbol).distinct().where(_in_day(warehouse, lo, hi))
    with warehouse.engine.connect() as conn:
        return {row[0] for row in conn.execute(query)}


def _in_day(warehouse: Warehouse, lo: datetime, hi: datetime):
    return sa.and_(
        _SNAPS.c.snapshot_ts >= warehouse.instant(lo), _SNAPS.c.snapshot_ts < warehouse.instant(hi)
    )


def _delete_verified(
    warehouse: Warehouse, symbol: str, lo: datetime, hi: datetime, expected: tuple[int, int]
) -> int | None:
    """Delete `symbol`'s hot rows of the day if they are exactly the keys that were written
    (count and checksum); otherwise roll back and return None (the rows stay hot)."""

    class _Changed(Exception):
        pass

    def work(conn: Connection) -> int:
        deleted = conn.execute(
            sa.delete(_SNAPS)
            .where(_SNAPS.c.symbol == symbol, _in_day(warehouse, lo, hi))
            .returning(_SNAPS.c.occ_symbol, _SNAPS.c.snapshot_ts)
        ).fetchall()
        occ = [row[0] for row in deleted]
        stamps = [row[1] for row in deleted]
        if (len(deleted), key_hashes(occ, stamps)) != expected:
            raise _Changed
        return len(deleted)

    try:
        return warehouse.run_transaction(work)
    except _Changed:
        return None


def _current_manifest(store: ColdStore, day: date) -> Manifest | None:
    found = store.manifests(day, day)
    return found[0] if found else None
