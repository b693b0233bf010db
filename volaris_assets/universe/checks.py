"""Checks on the universes: a universe that suddenly collapses must not feed the pipeline.

Every ingestion asset reads its symbols from `tickers`; a broken constituents source that loads
a handful of symbols would quietly shrink every downstream asset. The check compares the symbol
count with the previous materialization from the same source, and blocks, so `scan_universe`
does not follow a collapsed S&P 500 in the same run.
"""

import dagster as dg

from volaris_assets.universe.assets import scan_universe, sp500_constituents

MAX_DROP = 0.10


def _number(record: dg.EventLogRecord, key: str) -> object:
    value = record.asset_materialization.metadata.get(key) if record.asset_materialization else None
    return getattr(value, "value", None)


def universe_not_collapsed(asset: dg.AssetsDefinition) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=asset,
        name="universe_not_collapsed",
        blocking=True,
        description=f"The universe is not empty and has not shrunk by more than {MAX_DROP:.0%} "
        "since the previous materialization from the same source.",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        records = context.instance.fetch_materializations(asset.key, limit=2).records
        if not records:
            return dg.AssetCheckResult(passed=False, description="never materialized")
        current = int(_number(records[0], "symbols") or 0)
        metadata = {"symbols": current}
        if current == 0:
            return dg.AssetCheckResult(
                passed=False, description="universe is empty", metadata=metadata
            )
        if len(records) < 2 or _number(records[1], "source") != _number(records[0], "source"):
            return dg.AssetCheckResult(
                passed=True,
                description=f"{current} symbols (no comparable previous load)",
                metadata=metadata,
            )
        previous = int(_number(records[1], "symbols") or 0)
        drop = 1.0 - current / previous if previous else 0.0
        return dg.AssetCheckResult(
            passed=drop <= MAX_DROP,
            description=f"{current} symbols, previously {previous} ({-drop:+.1%})",
            metadata={**metadata, "previous_symbols": previous, "change": round(-drop, 4)},
        )

    return _check


universe_checks = [
    universe_not_collapsed(sp500_constituents),
    universe_not_collapsed(scan_universe),
]
