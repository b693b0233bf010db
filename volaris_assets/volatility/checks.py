"""Checks on `iv_metrics`: coverage, and every figure within the range it is defined on."""

import dagster as dg
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.checks.coverage import coverage_check
from volaris_assets.checks.violations import count_violations
from volaris_assets.ingest.range_metadata import with_range
from volaris_assets.ingest.validation import MAX_IV
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.warehouse import tables


@dg.asset_check(
    asset=iv_metrics,
    name="iv_metrics_in_bounds",
    partitions_def=iv_metrics.partitions_def,
    description="IV rank and IV percentile lie in [0, 100]; 30-day ATM IV and the term-structure "
    f"points lie in (0, {MAX_IV:g}]; the expected move is not negative.",
)
def iv_metrics_in_bounds(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    keys = context.partition_key_range
    days = [
        s.day
        for s in calendar.sessions_between(
            calendar.session_day(keys.start), calendar.session_day(keys.end)
        )
    ]
    iv = tables.iv_metrics
    vols = (iv.c.atm_iv_30d, iv.c.iv_7d, iv.c.iv_30d, iv.c.iv_60d, iv.c.iv_90d)
    with warehouse.open() as wh:
        found = count_violations(
            wh,
            iv,
            iv.c.date.in_(days),
            {
                "iv_rank_out_of_range": (iv.c.iv_rank < 0) | (iv.c.iv_rank > 100),
                "iv_percentile_out_of_range": (iv.c.iv_percentile < 0) | (iv.c.iv_percentile > 100),
                "iv_out_of_bounds": sa.or_(*((v <= 0) | (v > MAX_IV) for v in vols)),
                "negative_expected_move": iv.c.expected_move < 0,
            },
            iv.c.symbol,
        )
    return with_range(context, found.result("symbol-days"))


volatility_checks = [coverage_check(iv_metrics), iv_metrics_in_bounds]
