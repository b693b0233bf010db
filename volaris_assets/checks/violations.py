"""Row-rule checks counted in SQL: how many rows of a slice break each rule, with examples.

The counting happens in the database (one `SUM(CASE ...)` per rule), so a check over a whole
snapshot of the S&P 500's chains never pulls half a million rows into the check's process.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.sql import ColumnElement

from volaris_assets.warehouse.store import Warehouse

EXAMPLES_PER_RULE = 5


@dataclass(frozen=True)
class Violations:
    """Rows checked, and per rule how many broke it and which (by `label`)."""

    checked: int
    counts: dict[str, int]
    examples: dict[str, list[str]]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merged(self, other: Violations) -> Violations:
        return Violations(
            checked=self.checked + other.checked,
            counts={
                k: self.counts.get(k, 0) + other.counts.get(k, 0)
                for k in {*self.counts, *other.counts}
            },
            examples={
                k: (self.examples.get(k, []) + other.examples.get(k, []))[:EXAMPLES_PER_RULE]
                for k in {*self.examples, *other.examples}
            },
        )

    def result(
        self,
        what: str,
        *,
        extra: Mapping[str, object] | None = None,
    ) -> dg.AssetCheckResult:
        broken = {rule: n for rule, n in self.counts.items() if n}
        if not self.checked:
            description = f"no {what} to check"
        elif broken:
            description = f"{self.total} of {self.checked} {what} break a rule: " + ", ".join(
                f"{rule}={n}" for rule, n in sorted(broken.items())
            )
        else:
            description = f"all {self.checked} {what} pass"
        return dg.AssetCheckResult(
            passed=not broken,
            severity=dg.AssetCheckSeverity.ERROR,
            description=description,
            metadata={
                "rows_checked": self.checked,
                "violations": dg.MetadataValue.json(dict(sorted(self.counts.items()))),
                "examples": dg.MetadataValue.json({k: v for k, v in self.examples.items() if v}),
                **(extra or {}),
            },
        )


def count_violations(
    warehouse: Warehouse,
    table: sa.Table,
    where: ColumnElement[bool],
    rules: Mapping[str, ColumnElement[bool]],
    label: ColumnElement,
) -> Violations:
    """Count the rows of `table` matching `where`, and those breaking each rule (a rule is the
    condition that marks a row as bad); up to five `label`s per broken rule as examples."""
    sums = [sa.func.sum(sa.case((bad, 1), else_=0)).label(name) for name, bad in rules.items()]
    with warehouse.engine.connect() as conn:
        row = conn.execute(
            sa.select(sa.func.count().label("checked"), *sums).select_from(table).where(where)
        ).one()
        counts = {name: int(getattr(row, name) or 0) for name in rules}
        examples = {
            name: [
                str(value)
                for (value,) in conn.execute(
                    sa.select(label).where(where, rules[name]).limit(EXAMPLES_PER_RULE)
                )
            ]
            for name, count in counts.items()
            if count
        }
    return Violations(checked=int(row.checked), counts=counts, examples=examples)
