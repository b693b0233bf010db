"""Checks on option-chain snapshots: coverage, tradeable quotes, plausible implied volatility.

The quote check blocks: `iv_metrics` and the wheel scan read these snapshots, and a crossed or
negative quote would turn into a nonsense mid price, IV and premium downstream.
"""

from datetime import datetime

import dagster as dg
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.checks.coverage import coverage_check
from volaris_assets.checks.violations import count_violations
from volaris_assets.ingest.range_metadata import with_range
from volaris_assets.ingest.validation import MAX_IV
from volaris_assets.options.assets import option_chains
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

MIN_IV = 0.005


def snapshot_window(context: dg.AssetCheckExecutionContext) -> tuple[datetime, datetime]:
    """First and last snapshot instants of the partitions this check covers."""
    keys = context.partition_key_range
    return calendar.snapshot_instant(keys.start), calendar.snapshot_instant(keys.end)


@dg.asset_check(
    asset=option_chains,
    name="quotes_not_crossed",
    partitions_def=option_chains.partitions_def,
    blocking=True,
    description="No negative bid or ask and no bid above ask, in the snapshot history and in the "
    "latest-chain rows this snapshot wrote. Blocking: downstream prices and IVs come from these.",
)
def quotes_not_crossed(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    first, last = snapshot_window(context)
    with warehouse.open() as wh:
        history, latest = (
            count_violations(
                wh,
                table,
                stamp.between(wh.instant(first), wh.instant(last)),
                {
                    "negative_bid": table.c.bid < 0,
                    "negative_ask": table.c.ask < 0,
                    "crossed": table.c.bid > table.c.ask,
                },
                table.c.occ_symbol,
            )
            for table, stamp in (
                (tables.option_snapshots, tables.option_snapshots.c.snapshot_ts),
                (tables.option_contracts, tables.option_contracts.c.last_updated),
            )
        )
    return with_range(context, history.merged(latest).result("quotes"))


@dg.asset_check(
    asset=option_chains,
    name="implied_volatility_in_bounds",
    partitions_def=option_chains.partitions_def,
    description=f"Every stored implied volatility is within ({MIN_IV:g}, {MAX_IV:g}] "
    "(as a fraction: 0.5% to 500%); a missing IV is allowed (no solution from the mid).",
)
def implied_volatility_in_bounds(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    first, last = snapshot_window(context)
    snaps = tables.option_snapshots
    iv = snaps.c.implied_volatility
    with warehouse.open() as wh:
        found = count_violations(
            wh,
            snaps,
            snaps.c.snapshot_ts.between(wh.instant(first), wh.instant(last)),
            {"too_low": iv <= MIN_IV, "too_high": iv > MAX_IV},
            snaps.c.occ_symbol,
        )
        missing = _missing_iv(wh, first, last)
    return with_range(context, found.result("contracts", extra={"iv_missing": missing}))


def _missing_iv(wh: Warehouse, first: datetime, last: datetime) -> int:
    snaps = tables.option_snapshots
    with wh.engine.connect() as conn:
        return int(
            conn.execute(
                sa.select(sa.func.count()).where(
                    snaps.c.snapshot_ts.between(wh.instant(first), wh.instant(last)),
                    snaps.c.implied_volatility.is_(None),
                )
            ).scalar()
            or 0
        )


option_checks = [coverage_check(option_chains), quotes_not_crossed, implied_volatility_in_bounds]
