"""Symbol coverage: the share of a partition's symbols whose latest outcome is `ok`.

Read from `sync_stock_results`, not from the materialization metadata, because a partition's
coverage is the sum of its runs: the first run leaves a few symbols failed, the retry sensor's
runs fix some of them, and the check (which runs in each of those runs) must see the partition
heal. Each symbol counts once, by its latest outcome for the partition.
"""

from collections import Counter

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from volaris_assets.ingest.range_metadata import with_range
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

DEFAULT_MINIMUM = 0.99
RANGE_SEPARATOR = ".."


def partition_label(start: str, end: str) -> str:
    """The `partition` value the fan-out writes for a run over start..end."""
    return start if start == end else f"{start}{RANGE_SEPARATOR}{end}"


def latest_outcomes(warehouse: Warehouse, asset: str, start: str, end: str) -> pd.DataFrame:
    """Each symbol's latest outcome among the runs that covered the partitions start..end
    (runs of exactly that range, and backfill runs over a range containing it).

    The latest row per symbol is picked in SQL: a partition refreshed every five minutes holds
    ~80 runs x 500 symbols of outcomes by the close, which the check must not load to keep 500.
    """
    results = tables.sync_stock_results
    labels = warehouse.read_frame(
        sa.select(results.c.partition)
        .where(
            results.c.asset == asset,
            sa.or_(
                results.c.partition == partition_label(start, end),
                results.c.partition.contains(RANGE_SEPARATOR),
            ),
        )
        .distinct()
    )["partition"]
    covering = [label for label in labels if _covers(label, start, end)]
    newest_first = (
        sa.func.row_number()
        .over(
            partition_by=results.c.symbol,
            order_by=(results.c.recorded_at.desc(), results.c.run_id.desc()),
        )
        .label("newest_first")
    )
    ranked = (
        sa.select(
            results.c.run_id,
            results.c.partition,
            results.c.symbol,
            results.c.status,
            results.c.error_type,
            results.c.recorded_at,
            newest_first,
        )
        .where(results.c.asset == asset, results.c.partition.in_(covering))
        .subquery()
    )
    latest = sa.select(*[c for c in ranked.c if c.name != "newest_first"]).where(
        ranked.c.newest_first == 1
    )
    return warehouse.read_frame(latest.order_by(ranked.c.symbol))


def _covers(label: str, start: str, end: str) -> bool:
    """Partition keys are ISO dates or date-times, so string order is time order."""
    first, _, last = label.partition(RANGE_SEPARATOR)
    return first <= start and (last or first) >= end


def coverage_result(outcomes: pd.DataFrame, minimum: float) -> dg.AssetCheckResult:
    if outcomes.empty:
        return dg.AssetCheckResult(
            passed=False,
            severity=dg.AssetCheckSeverity.WARN,
            description="no symbol outcomes recorded for this partition",
            metadata={"coverage": 0.0, "symbols_total": 0},
        )
    failed = outcomes[outcomes["status"] != "ok"]
    coverage = 1.0 - len(failed) / len(outcomes)
    passed = coverage >= minimum
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{coverage:.1%} of {len(outcomes)} symbols written (minimum {minimum:.0%})",
        metadata={
            "coverage": round(coverage, 4),
            "symbols_total": len(outcomes),
            "symbols_ok": len(outcomes) - len(failed),
            "failures_by_category": dg.MetadataValue.json(
                dict(Counter(failed["error_type"].fillna("unknown")).most_common())
            ),
            "failed_symbols": dg.MetadataValue.json(sorted(failed["symbol"])[:50]),
            "runs": outcomes["run_id"].nunique(),
        },
    )


def coverage_check(
    asset: dg.AssetsDefinition, *, minimum: float = DEFAULT_MINIMUM
) -> dg.AssetChecksDefinition:
    """A partitioned check that `minimum` of the partition's symbols were written.

    Not blocking: partial coverage is the retry sensor's job to heal, and what was written is
    good data. WARN severity for the same reason.
    """
    name = asset.key.to_user_string()

    @dg.asset_check(
        asset=asset,
        name="symbol_coverage",
        partitions_def=asset.partitions_def,
        description=f"At least {minimum:.0%} of the partition's symbols have a written result "
        "(each symbol counted by its latest outcome, so retries heal the partition).",
    )
    def _coverage(
        context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> dg.AssetCheckResult:
        keys = context.partition_key_range
        with warehouse.open() as wh:
            outcomes = latest_outcomes(wh, name, keys.start, keys.end)
        return with_range(context, coverage_result(outcomes, minimum))

    return _coverage
