"""Dialect-specific bulk upserts.

PostgreSQL: the rows become one CSV buffer, built column by column (numpy formats the
timestamps and dates; pandas' C writer does the rest), and go in with COPY:
- a batch of new keys (a new snapshot, a new run's outcomes) is COPYed straight into the table
  inside a savepoint: as fast as COPY gets with the table's indexes;
- a batch whose first key exists (a re-run, the latest-chain table), or whose straight
  COPY hit an existing key (the savepoint is rolled back), goes through a session-local staging
  table and one `INSERT ... SELECT ... ON CONFLICT DO UPDATE`.
Duplicate keys within a batch are dropped before (the last row wins), since ON CONFLICT cannot
touch one row twice in a statement.
SQLite: one executemany of `INSERT ... ON CONFLICT DO UPDATE`, values converted a column at a
time into SQLAlchemy's storage forms.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

_UNIQUE_VIOLATION = "23505"


def sqlite_upsert(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: pd.DataFrame | Sequence[Mapping[str, Any]],
    update_where_newer: str | None,
) -> int:
    """Upsert `rows` with one executemany of `INSERT ... ON CONFLICT DO UPDATE`.

    Values go to the driver in SQLAlchemy's own SQLite storage forms (timestamps as
    'YYYY-MM-DD HH:MM:SS.ffffff' naive UTC, dates as 'YYYY-MM-DD', booleans as 1/0), so reads
    and comparisons through SQLAlchemy see exactly what its own inserts would have written.
    A frame is converted a column at a time; per-cell conversion and SQLAlchemy's parameter
    processing cost 3x the database's work on a chain.
    """
    columns, values = _sqlite_rows(rows, table)
    if not values:
        return 0
    quoted = ", ".join(_q(c) for c in columns)
    placeholders = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {_q(table.name)} ({quoted}) VALUES ({placeholders}) "
        + _on_conflict(table, keys, columns, update_where_newer),
        values,
    )
    return len(values)


def _sqlite_rows(
    rows: pd.DataFrame | Sequence[Mapping[str, Any]], table: sa.Table
) -> tuple[list[str], list[tuple[Any, ...]]]:
    if isinstance(rows, pd.DataFrame):
        columns = [str(c) for c in rows.columns]
        cells = [_sqlite_column(rows[c], table.c[c].type) for c in columns]
        return columns, list(zip(*cells, strict=True))
    columns = list(rows[0].keys()) if rows else []
    types = [table.c[c].type for c in columns]
    return columns, [
        tuple(_sqlite_cell(row[c], t) for c, t in zip(columns, types, strict=True)) for row in rows
    ]


def _sqlite_column(column: pd.Series, sql_type: sa.types.TypeEngine) -> list[Any]:
    """One frame column as the Python values sqlite3 binds (NaN/NaT -> None).

    Common column types take a direct path (a float64 column through `tolist`, a column of
    plain dates through `isoformat`): the scan writes a few rows per symbol, where pandas'
    fixed cost per conversion was most of the write.
    """
    if isinstance(sql_type, sa.DateTime):
        text = _iso(_utc(column), "us")
        return [t[:10] + " " + t[11:26] if t else None for t in text.tolist()]
    if isinstance(sql_type, sa.Date):
        values = column.tolist()
        if all(type(v) is date for v in values):
            return [v.isoformat() for v in values]
        return [t or None for t in _iso(pd.to_datetime(column), "D").tolist()]
    if column.dtype == np.float64:
        values = column.tolist()
        for index in np.flatnonzero(np.isnan(column.to_numpy())):
            values[index] = None
        return values
    values = column.to_numpy(dtype=object, na_value=None).tolist()
    if column.dtype.kind in "fiu":
        return values  # Python numbers already, None where NaN
    if column.dtype.kind == "b":
        return [None if v is None else int(v) for v in values]
    return [_sqlite_cell(v, sql_type) for v in values]


def _sqlite_cell(value: Any, sql_type: sa.types.TypeEngine) -> Any:
    """One value as sqlite3 binds it, in SQLAlchemy's storage form for its SQL type."""
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(sql_type, sa.DateTime) and isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(sql_type, sa.Date) and isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, bool):
        return int(value)
    return value


def postgres_upsert(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    frame: pd.DataFrame,
    update_where_newer: str | None,
) -> int:
    """Upsert `frame` into `table`; returns the rows sent after dropping duplicate keys."""
    frame = frame.drop_duplicates(subset=list(keys), keep="last")
    columns = [str(c) for c in frame.columns]
    buffer = csv_buffer(frame, table)
    if not _any_key_exists(conn, table, keys, frame) and _copy_new_rows(
        conn, table.name, columns, buffer
    ):
        return len(frame)
    buffer.seek(0)
    stage = f"_stage_{table.name}"
    conn.exec_driver_sql(
        f"CREATE TEMP TABLE IF NOT EXISTS {stage} "
        f"(LIKE {_q(table.name)} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
    )
    # An earlier upsert into the same table in this transaction left its rows here.
    conn.exec_driver_sql(f"TRUNCATE {stage}")
    _copy(conn, stage, columns, buffer)
    quoted = ", ".join(_q(c) for c in columns)
    conn.exec_driver_sql(
        f"INSERT INTO {_q(table.name)} ({quoted}) SELECT {quoted} FROM {stage} "
        + _on_conflict(table, keys, columns, update_where_newer)
    )
    return len(frame)


# At most this many rows go in as one `INSERT ... VALUES ... ON CONFLICT` instead of COPY: a
# symbol's outcome row (every fan-out writes one per symbol) cost 2.6 ms of CPU through a frame,
# COPY, its probe and its savepoint.
SMALL_BATCH_ROWS = 32


def postgres_insert_rows(
    conn: Connection,
    table: sa.Table,
    keys: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    update_where_newer: str | None,
) -> int:
    """A few rows as one parameterised multi-row INSERT with the shared `ON CONFLICT`; the
    last row of a key wins, as in `postgres_upsert`. Returns the rows sent."""
    unique = list({tuple(row[k] for k in keys): row for row in rows}.values())
    columns = list(unique[0])
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    values = tuple(None if _missing(row[c]) else _python(row[c]) for row in unique for c in columns)
    quoted = ", ".join(_q(c) for c in columns)
    statement = (
        f"INSERT INTO {_q(table.name)} ({quoted}) VALUES "
        + ", ".join([placeholders] * len(unique))
        + " "
        + _on_conflict(table, keys, columns, update_where_newer).replace("%", "%%")
    )
    # On the driver's cursor, as COPY is: a refused row raises the driver's own error, whose
    # text names the column, not SQLAlchemy's wrapper quoting the statement and its values.
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.execute(statement, values)
    finally:
        cursor.close()
    return len(unique)


def _missing(cell: Any) -> bool:
    """NaN, NaT, None or pd.NA: NULL (a list or array cell is never missing)."""
    return not isinstance(cell, (list, tuple, np.ndarray)) and bool(pd.isna(cell))


def _on_conflict(
    table: sa.Table, keys: Sequence[str], columns: Sequence[str], update_where_newer: str | None
) -> str:
    """The `ON CONFLICT` clause both dialects share: update every non-key column (only from a
    row at least as new, with `update_where_newer`), or do nothing for a key-only table."""
    conflict = ", ".join(_q(k) for k in keys)
    non_keys = [c for c in columns if c not in keys]
    if not non_keys:
        return f"ON CONFLICT ({conflict}) DO NOTHING"
    assignments = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in non_keys)
    clause = f"ON CONFLICT ({conflict}) DO UPDATE SET {assignments}"
    if update_where_newer:
        column = _q(update_where_newer)
        clause += f" WHERE EXCLUDED.{column} >= {_q(table.name)}.{column}"
    return clause


def _any_key_exists(
    conn: Connection, table: sa.Table, keys: Sequence[str], frame: pd.DataFrame
) -> bool:
    """Whether the batch's first key is stored: one index probe that spares a COPY bound to
    fail on a batch of updates (batches are all new or mostly stored: a snapshot, a re-run)."""
    row = frame.iloc[0]
    match = [table.c[k] == _python(row[k]) for k in keys]
    return conn.execute(sa.select(sa.literal(1)).where(*match).limit(1)).first() is not None


def _python(value: Any) -> Any:
    """A frame cell as the driver binds it (numpy and pandas scalars to Python)."""
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    return value.item() if isinstance(value, np.generic) else value


def _copy_new_rows(
    conn: Connection, table: str, columns: Sequence[str], buffer: io.StringIO
) -> bool:
    """COPY straight into `table`; False (and nothing written) when a key already exists."""
    try:
        with conn.begin_nested():
            _copy(conn, table, columns, buffer)
    except Exception as error:  # noqa: BLE001 - only a duplicate key is ours to handle
        if getattr(error, "pgcode", None) != _UNIQUE_VIOLATION:
            raise
        return False
    return True


def _copy(conn: Connection, table: str, columns: Sequence[str], buffer: io.StringIO) -> None:
    quoted = ", ".join(_q(c) for c in columns)
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        cursor.copy_expert(f"COPY {_q(table)} ({quoted}) FROM STDIN WITH (FORMAT csv)", buffer)
    finally:
        cursor.close()


def csv_buffer(frame: pd.DataFrame, table: sa.Table) -> io.StringIO:
    """`frame` as COPY csv: NULL is an empty unquoted field, timestamps are ISO UTC.

    Columns are converted by their SQL type, not their pandas dtype, so an integer column that
    arrived as floats (any provider's NaN-capable parse) is written as integers.
    """
    out = {}
    for name in frame.columns:
        column = frame[name]
        sql_type = table.c[str(name)].type
        if isinstance(sql_type, sa.DateTime):
            out[name] = _iso(_utc(column), "us")
        elif isinstance(sql_type, sa.Date):
            out[name] = _iso(pd.to_datetime(column), "D")
        elif isinstance(sql_type, sa.Integer) and column.dtype.kind == "f":
            out[name] = _integral(column)
        else:
            out[name] = column
    buffer = io.StringIO()
    pd.DataFrame(out, index=frame.index).to_csv(buffer, header=False, index=False)
    buffer.seek(0)
    return buffer


def _utc(column: pd.Series) -> pd.Series:
    """A timestamp column as tz-aware values (naive ones are taken as UTC)."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column
    return pd.to_datetime(column, utc=True)


def _iso(values: pd.Series, unit: str) -> np.ndarray:
    """ISO-8601 text at `unit` resolution, formatted in C (NaT -> empty, i.e. NULL).

    Aware values are written in UTC with a `Z`; naive ones (dates) as they are. An aware
    column's datetime64 values are its UTC instants.
    """
    aware = values.dt.tz is not None
    instants = values.to_numpy(f"datetime64[{unit}]")
    text = np.datetime_as_string(instants, unit=unit, timezone="UTC" if aware else "naive")
    return np.where(np.isnat(instants), "", text).astype(object)


def _integral(column: pd.Series) -> pd.Series:
    """Whole floats as nullable integers; a fractional value is left for the database to
    refuse, rather than silently rounded."""
    present = column.dropna().to_numpy()
    if np.isfinite(present).all() and (present == np.round(present)).all():
        return column.astype("Int64")
    return column


def _q(identifier: str) -> str:
    """Quote an identifier (`right` is a reserved word in PostgreSQL)."""
    return '"' + identifier.replace('"', '""') + '"'
