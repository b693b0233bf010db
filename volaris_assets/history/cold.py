"""The cold tier: one Parquet file per session, on a local disk or any object store.

Layout, hive-style so that DuckDB and Spark prune by date from the path alone:

    <root>/option_snapshots/session=YYYY-MM-DD/part-0.parquet
    <root>/_manifests/YYYY-MM-DD.json

DuckDB writes and reads the files (its Parquet support is built into the wheel: nothing is
downloaded). It is imported only inside the functions that use it, so that loading the code
location does not cost every process its memory; pyarrow is not used at all, because pandas
imports it eagerly when it is installed (~66 MB in every process).

Inside a file rows are sorted by symbol, contract and time in row groups of `ROW_GROUP_ROWS`, so
a reader asking for one symbol skips the others by their min/max statistics; sorted, each
contract's columns change little from row to row, which is what zstd, Parquet's dictionary and
run-length encodings and BYTE_STREAM_SPLIT floats (Parquet format v2) compress. Prices, IV and
greeks are float32: providers send at most 4 decimals of prices and 6 significant digits of IV,
within float32's 7.

The manifest says what a compaction verified it wrote (rows, key checksum, bytes): it is how a
missing file is noticed at all, and how a corrupt one is told from a good one without reading
it whole. A file is published by writing a temporary name and renaming it; a rename within one
directory is atomic on a local disk (on an object store it is a copy then a delete, and readers
only ever open names a manifest lists). Object stores are reached through fsspec (s3fs, gcsfs
or adlfs installed beside it), registered with DuckDB, whose own httpfs extension would be
downloaded at first use.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from volaris_assets.warehouse.urls import DEFAULT_SQLITE_PATH

if TYPE_CHECKING:
    import duckdb

DEFAULT_ROOT = DEFAULT_SQLITE_PATH.parent / "history"
HISTORY_URL_SETTING = "VOLARIS_HISTORY_URL"
TABLE_DIR = "option_snapshots"
MANIFEST_DIR = "_manifests"
FILE_NAME = "part-0.parquet"
# Rows of a Parquet row group: about one symbol's session (~400 contracts x 26 snapshots), so
# that a one-symbol query reads little more than that symbol.
ROW_GROUP_ROWS = 10_240
# Rows fetched at a time when keys are read back for their checksum (DuckDB vectors of 2,048).
_CHUNK_VECTORS = 50
# Both tiers are read in this schema (the hot rows are cast to it), so a value reads the same
# whichever tier holds it: (column, DuckDB type).
SCHEMA: tuple[tuple[str, str], ...] = (
    ("symbol", "VARCHAR"),
    ("occ_symbol", "VARCHAR"),
    ("snapshot_ts", "TIMESTAMPTZ"),
    ("expiration", "DATE"),
    ("strike", "DOUBLE"),
    ("right", "VARCHAR"),
    ("bid", "FLOAT"),
    ("ask", "FLOAT"),
    ("mark_price", "FLOAT"),
    ("last", "FLOAT"),
    ("volume", "BIGINT"),
    ("open_interest", "BIGINT"),
    ("implied_volatility", "FLOAT"),
    ("delta", "FLOAT"),
    ("gamma", "FLOAT"),
    ("theta", "FLOAT"),
    ("vega", "FLOAT"),
    ("underlying_price", "FLOAT"),
    ("dte", "INTEGER"),
    ("provider", "VARCHAR"),
)
COLUMNS = [name for name, _ in SCHEMA]
KEY = ["occ_symbol", "snapshot_ts"]
ORDER = "symbol, occ_symbol, snapshot_ts"
# What a hot row replaces in the cold tier: a symbol's whole chain at one snapshot time, as a
# write of a window replaces it in the hot table (one provider's chain, never a mixture), not
# contract by contract, which would keep the contracts an older chain listed and a newer not.
SNAPSHOT_KEY = "symbol, snapshot_ts"
# zstd 9 on sorted rows; format v2 is what makes DuckDB write floats BYTE_STREAM_SPLIT (the
# bytes of each value spread over streams, so that zstd finds the slowly changing exponent and
# high mantissa bytes of one contract's successive quotes).
COPY_OPTIONS = (
    "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 9, "
    f"ROW_GROUP_SIZE {ROW_GROUP_ROWS}, PARQUET_VERSION v2"
)


def quoted(name: str) -> str:
    """A column name as a DuckDB identifier (`right` is a keyword)."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A DuckDB string literal: views take no parameters, so paths and symbols are inlined."""
    return "'" + text.replace("'", "''") + "'"


COLUMN_DDL = ", ".join(f"{quoted(name)} {kind}" for name, kind in SCHEMA)


def select_cast(source: str) -> str:
    """A SELECT of `source`'s snapshot columns in the history schema and order."""
    columns = ", ".join(f"CAST({quoted(n)} AS {kind}) AS {quoted(n)}" for n, kind in SCHEMA)
    return f"SELECT {columns} FROM {source}"


def read_files(uris: list[str]) -> str:
    """A SELECT of the cold files DuckDB opens as `uris`, in the history schema."""
    files = ", ".join(map(literal, uris))
    return f"SELECT {', '.join(map(quoted, COLUMNS))} FROM read_parquet([{files}])"


def insert_frame(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> None:
    """Append snapshot rows (either tier's columns, any order; a hot table's timestamps naive UTC
    or aware) to `table`, cast to the history schema."""
    if not len(frame):
        return
    frame = frame[COLUMNS].copy()
    frame["snapshot_ts"] = pd.to_datetime(frame["snapshot_ts"], utc=True)
    frame["expiration"] = pd.to_datetime(frame["expiration"])
    con.register("_incoming", frame)
    try:
        con.execute(f"INSERT INTO {table} {select_cast('_incoming')}")
    finally:
        con.unregister("_incoming")


def key_hashes(occ_symbols, timestamps) -> int:
    """The key checksum of rows: the sum, modulo 2**64, of 64-bit hashes of (occ_symbol, UTC
    microseconds). Order-independent, so batches and row groups add up; equal counts and
    checksums mean the same keys (a collision is a 1 in 2**64 chance)."""
    if len(occ_symbols) == 0:
        return 0
    ts = pd.to_datetime(pd.Series(timestamps), utc=True).astype("datetime64[us, UTC]")
    keys = pd.DataFrame(
        {"occ_symbol": np.asarray(occ_symbols, dtype=object), "ts": ts.astype("int64").to_numpy()}
    )
    hashes = pd.util.hash_pandas_object(keys, index=False).to_numpy(np.uint64)
    return int(hashes.sum(dtype=np.uint64))


def add_hashes(a: int, b: int) -> int:
    return (a + b) % (1 << 64)


def key_checksum(con: duckdb.DuckDBPyConnection, source: str) -> tuple[int, int]:
    """Rows and key checksum of `source` (a table or table function), its keys fetched a chunk
    at a time: memory holds ~100,000 keys, never the session."""
    con.execute(f"SELECT occ_symbol, snapshot_ts FROM {source}")
    rows, checksum = 0, 0
    while len(keys := con.fetch_df_chunk(_CHUNK_VECTORS)):
        rows += len(keys)
        checksum = add_hashes(checksum, key_hashes(keys["occ_symbol"], keys["snapshot_ts"]))
    return rows, checksum


class ColdFileError(Exception):
    """A cold file that is missing, unreadable or not what its manifest says: names the file."""


@contextmanager
def naming(path: str) -> Iterator[None]:
    """Turns a failure to read or write `path` (a missing file, a full disk, a directory
    without write permission) into `ColdFileError` naming it: the OS's own error would pass
    for the warehouse's, since compaction runs inside the warehouse's block."""
    import duckdb

    try:
        yield
    except (OSError, duckdb.Error) as error:
        raise ColdFileError(f"{path}: {_reason(error)}") from None


@dataclass(frozen=True)
class Manifest:
    """What one session's compaction verified: rows, the key checksum, the file's bytes."""

    session: str
    path: str
    rows: int
    key_checksum: str
    bytes: int
    symbols: int


class ColdStore:
    """The cold tier at `url` (unset: `VOLARIS_HISTORY_URL`, as `Warehouse()` reads
    `DATABASE_URL`): a local directory (the default, data/history beside the SQLite
    warehouse) or a URL an fsspec filesystem opens (s3://bucket/prefix, gs://..., with the
    store's usual credentials from the environment). Paths are the filesystem's own (no
    scheme); `uri` gives the name DuckDB opens."""

    def __init__(self, url: str | None = None) -> None:
        # Deferred like duckdb: loading the code location costs no process fsspec (0.7 MB).
        import fsspec
        from fsspec.implementations.local import LocalFileSystem

        self.url = url or os.environ.get(HISTORY_URL_SETTING, "").strip() or str(DEFAULT_ROOT)
        if "://" in self.url:
            self.fs, root = fsspec.core.url_to_fs(self.url)
        else:  # created on first write: reading (the doctor, a query) changes nothing
            self.fs, root = LocalFileSystem(), str(Path(self.url).resolve())
        self.local = isinstance(self.fs, LocalFileSystem)
        self.root = root.rstrip("/")

    def connect(self, database: str = ":memory:") -> duckdb.DuckDBPyConnection:
        """A DuckDB connection that reads and writes this store: UTC timestamps, never an
        extension download, the store's filesystem registered when it is not the local disk."""
        import duckdb  # deferred: only the processes that touch the cold tier pay for it

        con = duckdb.connect(
            database,
            config={"autoinstall_known_extensions": False, "autoload_known_extensions": False},
        )
        con.execute("SET TimeZone = 'UTC'")
        if not self.local:
            con.register_filesystem(self.fs)
        return con

    def uri(self, path: str) -> str:
        return path if self.local else self.fs.unstrip_protocol(path)

    def parquet(self, path: str) -> str:
        """The SQL source reading the file at `path` in the history schema."""
        return f"({read_files([self.uri(path)])})"

    def session_dir(self, session: date) -> str:
        return f"{self.root}/{TABLE_DIR}/session={session.isoformat()}"

    def file_path(self, session: date) -> str:
        return f"{self.session_dir(session)}/{FILE_NAME}"

    def manifest_path(self, session: date) -> str:
        return f"{self.root}/{MANIFEST_DIR}/{session.isoformat()}.json"

    def temp_path(self, session: date) -> str:
        return f"{self.session_dir(session)}/.{FILE_NAME}.{uuid.uuid4().hex}.tmp"

    def exists(self, path: str) -> bool:
        return self.fs.isfile(path)

    def size(self, path: str) -> int:
        return int(self.fs.size(path) or 0)

    def write(self, con: duckdb.DuckDBPyConnection, query: str, path: str) -> None:
        """The rows of `query` written to `path` as a cold file (its order kept)."""
        with naming(path):
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            con.execute(f"COPY ({query}) TO {literal(self.uri(path))} ({COPY_OPTIONS})")

    def delete(self, path: str) -> None:
        with naming(path):
            self.fs.rm_file(path)

    def publish(self, temp: str, session: date) -> None:
        """Atomically give the verified temporary file its session's name. On a local disk the
        file and then its directory are flushed, so that hot rows deleted after this cannot
        outlive their file (or its manifest) in a power cut; an object store's upload is durable
        once closed."""
        self._durable_move(temp, self.file_path(session))

    def _durable_move(self, temp: str, path: str) -> None:
        with naming(path):
            if self.local:
                _fsync(temp)
            self.fs.mv(temp, path)
            if self.local:
                _fsync(path.rsplit("/", 1)[0])

    def _names(self, directory: str) -> list[str]:
        """Paths of the files directly in `directory` (none when it does not exist)."""
        with naming(directory):
            try:
                return [str(p) for p in self.fs.ls(directory, detail=False)]
            except FileNotFoundError:
                return []

    def discard_temporaries(self, session: date) -> int:
        """Remove temporary files a crashed compaction of `session` left; returns how many."""
        stale = [p for p in self._names(self.session_dir(session)) if p.endswith(".tmp")]
        for path in stale:
            self.delete(path)
        return len(stale)

    def write_manifest(self, manifest: Manifest) -> None:
        path = self.manifest_path(date.fromisoformat(manifest.session))
        temp = f"{path}.{uuid.uuid4().hex}.tmp"
        with naming(path):
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            self.fs.pipe_file(temp, json.dumps(asdict(manifest), sort_keys=True).encode())
        self._durable_move(temp, path)

    def manifests(self, first: date | None = None, last: date | None = None) -> list[Manifest]:
        """The manifests of the sessions compacted in [first, last], oldest first."""
        out = []
        for path in self._names(f"{self.root}/{MANIFEST_DIR}"):
            name = path.rsplit("/", 1)[-1]
            if not name.endswith(".json"):
                continue
            day = date.fromisoformat(name.removesuffix(".json"))
            if (first and day < first) or (last and day > last):
                continue
            out.append(Manifest(**json.loads(self.fs.cat_file(path))))
        return sorted(out, key=lambda m: m.session)

    def verify(
        self,
        manifest: Manifest,
        *,
        full: bool = False,
        con: duckdb.DuckDBPyConnection | None = None,
    ) -> str | None:
        """Why the manifest's file cannot be trusted, or None. The footer's row count is
        checked always (cheap: a few KB); `full` also reads every key back and compares the
        checksum. `con`: a connection of this store to use (a new one when None)."""
        path = manifest.path
        if not self.exists(path):
            return f"{path}: missing"
        own = con is None
        con = con or self.connect()
        try:
            with naming(path):
                (rows,) = con.execute(
                    "SELECT num_rows FROM parquet_file_metadata(?)", [self.uri(path)]
                ).fetchone()
            if rows != manifest.rows:
                return f"{path}: {rows} rows, the manifest says {manifest.rows}"
            if full:
                _, checksum = self.read_back(path, con)
                if f"{checksum:016x}" != manifest.key_checksum:
                    return (
                        f"{path}: key checksum {checksum:016x}, the manifest says "
                        f"{manifest.key_checksum}"
                    )
        except ColdFileError as error:
            return str(error)
        finally:
            if own:
                con.close()
        return None

    def read_back(self, path: str, con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
        """Rows and key checksum of the file at `path`, its keys read a chunk at a time; raises
        `ColdFileError` naming the file when it cannot be read."""
        with naming(path):
            return key_checksum(con, self.parquet(path))


def _fsync(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _reason(error: BaseException) -> str:
    """The first line of a read failure, for the caller to prefix with the file's name."""
    text = str(error).strip().splitlines()
    return f"unreadable ({type(error).__name__}: {text[0] if text else ''})"
