"""The history assets: a session's snapshots compacted to the cold tier, and retention."""

from datetime import datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets.cluster import queues
from volaris_assets.history.cold import ColdFileError
from volaris_assets.history.compaction import compact_session
from volaris_assets.history.resource import HistoryResource
from volaris_assets.history.retention import apply_retention
from volaris_assets.ingest.asset_support import OWNERS
from volaris_assets.options.assets import option_chains
from volaris_assets.resources.warehouse import WarehouseResource


@dg.asset(
    group_name="history",
    kinds={"parquet", "duckdb"},
    owners=OWNERS,
    deps=[dg.AssetDep(option_chains, partition_mapping=dg.TimeWindowPartitionMapping())],
    partitions_def=calendar.session_partitions(),
    op_tags=queues.COMPUTE,
    description="A session's option snapshots moved from the hot `option_snapshots` table to "
    "one zstd Parquet file (sorted by contract and time, row groups by symbol), verified by row "
    "count and key checksum before the hot rows are deleted. Idempotent; safe to re-run after a "
    "crash anywhere. Query both tiers with `volaris_assets.history.query.open_history`.",
)
def option_history(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, history: HistoryResource
) -> dg.MaterializeResult:
    day = calendar.session_day(context.partition_key)
    with warehouse.open() as wh:
        try:
            done = compact_session(wh, history.store(), day)
        except ColdFileError as error:
            raise dg.Failure(
                description=(
                    f"Compacting {day} stopped: the cold tier could not be read or written "
                    f"({error}). No hot row was deleted (a row leaves the hot table only once "
                    "its file is verified). Fix the cold tier (free space, write permission, "
                    "VOLARIS_HISTORY_URL) and run the partition again."
                )
            ) from None
    if done.deferred_symbols:
        context.log.warning(
            "hot rows changed during compaction and stay hot until the next run: %s",
            ", ".join(done.deferred_symbols),
        )
    return dg.MaterializeResult(
        metadata={
            "rows": dg.MetadataValue.int(done.rows),
            "bytes": dg.MetadataValue.int(done.bytes),
            "bytes_per_row": dg.MetadataValue.float(round(done.bytes_per_row, 2)),
            "hot_rows_read": dg.MetadataValue.int(done.hot_rows_read),
            "rows_from_existing_file": dg.MetadataValue.int(done.rows_from_file),
            "hot_rows_deleted": dg.MetadataValue.int(done.hot_rows_deleted),
            "deferred_symbols": dg.MetadataValue.int(len(done.deferred_symbols)),
            "symbols": dg.MetadataValue.int(done.symbols),
            "path": dg.MetadataValue.path(done.manifest.path if done.manifest else ""),
            "duration_s": dg.MetadataValue.float(round(done.seconds, 3)),
        }
    )


@dg.asset(
    group_name="history",
    kinds={"sql"},
    owners=OWNERS,
    op_tags=queues.COMPUTE,
    description="Deletes operational rows past their windows: `sync_stock_results`, "
    "`row_rejections` and 1/5-minute bars (VOLARIS_RETAIN_*_DAYS). Metadata: rows removed per "
    "table.",
)
def operational_retention(
    warehouse: WarehouseResource, history: HistoryResource
) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        removed = apply_retention(wh, history.windows(), datetime.now(calendar.UTC))
    return dg.MaterializeResult(
        metadata={f"removed_{name}": dg.MetadataValue.int(n) for name, n in removed.items()}
    )
