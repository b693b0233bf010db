"""What the storage costs: bytes per table and per tier, bytes per row, and a year ahead.

PostgreSQL answers with `pg_total_relation_size` (heap, indexes and TOAST); SQLite with its
`dbstat` table (every page of each table and of its indexes). The cold tier's size comes from
the manifests compaction wrote. The projection is a year of sessions at the current universe
(the contracts of the latest chain) and snapshot cadence: the hot window at the hot tier's
bytes per row, the rest at the cold tier's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from volaris_assets.history.cold import ColdStore
from volaris_assets.warehouse.tables import metadata

SESSIONS_PER_YEAR = 252
REGULAR_SESSION_MINUTES = 390

_PG_SIZES = sa.text(
    "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(:names)"
)
_SQLITE_SIZES = sa.text(
    "SELECT coalesce(m.tbl_name, d.name), sum(d.pgsize) FROM dbstat d "
    "LEFT JOIN sqlite_master m ON m.name = d.name GROUP BY 1"
)


@dataclass(frozen=True)
class TableSize:
    name: str
    rows: int
    bytes: int

    @property
    def bytes_per_row(self) -> float:
        return self.bytes / self.rows if self.rows else 0.0


@dataclass
class StorageReport:
    """Hot tables, the cold tier, and the year they project to."""

    tables: list[TableSize]
    cold_rows: int = 0
    cold_bytes: int = 0
    cold_sessions: int = 0
    problems: list[str] = field(default_factory=list)
    contracts_per_snapshot: int = 0

    @property
    def hot_bytes(self) -> int:
        return sum(t.bytes for t in self.tables)

    def table(self, name: str) -> TableSize:
        return next((t for t in self.tables if t.name == name), TableSize(name, 0, 0))

    @property
    def cold_bytes_per_row(self) -> float:
        return self.cold_bytes / self.cold_rows if self.cold_rows else 0.0

    def projected_year_bytes(self, snapshot_interval_min: int, hot_sessions: int) -> float | None:
        """A year of snapshots at the current universe and cadence (None until both tiers have
        rows to measure bytes per row by)."""
        hot = self.table("option_snapshots").bytes_per_row
        cold = self.cold_bytes_per_row
        if not (hot and cold and self.contracts_per_snapshot):
            return None
        per_session = self.contracts_per_snapshot * (
            REGULAR_SESSION_MINUTES // snapshot_interval_min
        )
        return per_session * (hot_sessions * hot + (SESSIONS_PER_YEAR - hot_sessions) * cold)


def measure(engine: sa.Engine, store: ColdStore | None) -> StorageReport:
    """Sizes of the contract's tables present in the database, and of the cold tier."""
    with engine.connect() as conn:
        present = set(sa.inspect(conn).get_table_names()) & set(metadata.tables)
        if engine.dialect.name == "postgresql":
            sizes = dict(conn.execute(_PG_SIZES, {"names": sorted(present)}).all())
        else:
            sizes = dict(conn.execute(_SQLITE_SIZES).all())
        rows = {
            name: conn.execute(
                sa.select(sa.func.count()).select_from(metadata.tables[name])
            ).scalar_one()
            for name in sorted(present)
        }
    report = StorageReport(
        [TableSize(name, rows[name], int(sizes.get(name) or 0)) for name in sorted(present)],
        contracts_per_snapshot=rows.get("option_contracts", 0),
    )
    if store is not None:
        for manifest in store.manifests():
            report.cold_sessions += 1
            report.cold_rows += manifest.rows
            report.cold_bytes += manifest.bytes
            if problem := store.verify(manifest):
                report.problems.append(problem)
    return report


# The hot table the budget is about: a managed PostgreSQL tier of a few GB.
HOT_BUDGET_BYTES = 2e9


def doctor_lines(
    report: StorageReport, snapshot_interval_min: int, hot_sessions: int
) -> list[tuple[str, str, str]]:
    """The doctor's storage section as (status, area, detail): each non-empty table, the cold
    tier (a bad file named: FAIL), and the year ahead (WARN when the hot window would not fit
    the hot budget)."""
    lines = [
        (
            "OK",
            f"storage {t.name}",
            f"{t.rows:,} rows, {_size(t.bytes)}, {t.bytes_per_row:.0f} B/row",
        )
        for t in report.tables
        if t.rows
    ]
    lines.append(("OK", "storage hot total", _size(report.hot_bytes)))
    cold = (
        f"{report.cold_sessions} sessions, {report.cold_rows:,} rows, {_size(report.cold_bytes)}, "
        f"{report.cold_bytes_per_row:.1f} B/row"
    )
    if report.problems:
        lines.append(("FAIL", "storage cold", f"{cold}; bad files: {'; '.join(report.problems)}"))
    else:
        lines.append(("OK", "storage cold", cold))
    year = report.projected_year_bytes(snapshot_interval_min, hot_sessions)
    if year is None:
        lines.append(("OK", "storage projection", "no projection until a session is compacted"))
        return lines
    per_session = report.contracts_per_snapshot * (REGULAR_SESSION_MINUTES // snapshot_interval_min)
    hot = per_session * hot_sessions * report.table("option_snapshots").bytes_per_row
    status = "WARN" if hot > HOT_BUDGET_BYTES else "OK"
    lines.append(
        (
            status,
            "storage projection",
            f"{_size(year)} a year at {report.contracts_per_snapshot:,} contracts every "
            f"{snapshot_interval_min} min; hot window of {hot_sessions} session(s) {_size(hot)}",
        )
    )
    return lines


def _size(n: float) -> str:
    if n < 1000:
        return f"{n:.0f} B"
    for unit in ("KB", "MB"):
        n /= 1000
        if n < 1000:
            return f"{n:.1f} {unit}"
    return f"{n / 1000:.1f} GB"
