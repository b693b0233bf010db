"""Checks on the wheel scan: coverage of the scan universe, and premiums that can be sold."""

import dagster as dg

from volaris_assets import calendar
from volaris_assets.checks.coverage import coverage_check
from volaris_assets.checks.violations import count_violations
from volaris_assets.ingest.range_metadata import with_range
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.warehouse import tables


@dg.asset_check(
    asset=wheel_premiums,
    name="premiums_sellable",
    partitions_def=wheel_premiums.partitions_def,
    description="Every scanned put has a positive premium and bid, a bid not above its ask, a "
    "put delta in [-1, 0], a positive DTE and a non-negative return.",
)
def premiums_sellable(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    # The table holds the latest scan, dated by the last session of the run's range.
    scan_date = calendar.session_day(context.partition_key_range.end)
    premiums = tables.stock_premiums
    with warehouse.open() as wh:
        found = count_violations(
            wh,
            premiums,
            premiums.c.scan_date == scan_date,
            {
                "nonpositive_premium": premiums.c.premium <= 0,
                "nonpositive_bid": premiums.c.bid <= 0,
                "crossed": premiums.c.bid > premiums.c.ask,
                "delta_not_a_put": (premiums.c.delta < -1) | (premiums.c.delta > 0),
                "nonpositive_dte": premiums.c.dte <= 0,
                "negative_return": premiums.c.annual_return < 0,
            },
            premiums.c.symbol,
        )
    return with_range(context, found.result("puts", extra={"scan_date": scan_date.isoformat()}))


scan_checks = [coverage_check(wheel_premiums), premiums_sellable]
