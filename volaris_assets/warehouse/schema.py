"""Bring an existing PostgreSQL warehouse's text columns up to the tables' current widths.

`create_all` only creates missing tables, so a warehouse created by an older release keeps the
VARCHAR lengths it was created with, and PostgreSQL refuses (rather than truncates) a longer
value: one long sub-industry failed the whole universe. Widening is all this does: a column is
never narrowed or retyped otherwise. `VARCHAR(n)` to `TEXT` or to a longer `VARCHAR` is
binary-compatible in PostgreSQL, so the ALTER rewrites no table and rebuilds no index.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

# The live VARCHAR columns and their lengths, in one catalog query.
_LIVE_VARCHARS = sa.text(
    "SELECT table_name, column_name, character_maximum_length "
    "FROM information_schema.columns "
    "WHERE table_schema = current_schema() AND data_type = 'character varying' "
    "AND table_name = ANY(:tables)"
)


def widen_text_columns(conn: Connection, metadata: sa.MetaData) -> list[str]:
    """ALTER every live VARCHAR column narrower than its model (TEXT, or a longer VARCHAR);
    returns the columns changed as `table.column`. Nothing is altered when nothing differs."""
    live = {
        (table, column): length
        for table, column, length in conn.execute(_LIVE_VARCHARS, {"tables": list(metadata.tables)})
    }
    changed: list[str] = []
    for table in metadata.sorted_tables:
        wider = [
            column
            for column in table.columns
            if (table.name, column.name) in live
            and _is_wider(column.type, live[table.name, column.name])
        ]
        if not wider:
            continue
        preparer = conn.dialect.identifier_preparer
        alterations = ", ".join(
            f"ALTER COLUMN {preparer.quote(c.name)} TYPE {c.type.compile(dialect=conn.dialect)}"
            for c in wider
        )
        conn.exec_driver_sql(f"ALTER TABLE {preparer.quote(table.name)} {alterations}")
        changed += [f"{table.name}.{c.name}" for c in wider]
    return changed


def _is_wider(model: sa.types.TypeEngine, live_length: int | None) -> bool:
    """Whether the model's text type holds more than a live VARCHAR of `live_length`."""
    if not isinstance(model, sa.String) or live_length is None:
        return False
    return model.length is None or model.length > live_length
