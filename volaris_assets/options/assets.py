"""Option-chain snapshots: every contract per 15-minute window, and the latest chain per symbol."""

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets import calendar
from volaris_assets.cluster import queues
from volaris_assets.ingest.asset_support import (
    OWNERS,
    IngestConfig,
    asset_metadata,
    run_fan_out,
    universe_symbols,
)
from volaris_assets.ingest.fanout import Written
from volaris_assets.ingest.validation import validate_chain
from volaris_assets.providers.base import CHAIN_COLUMNS
from volaris_assets.providers.resilience import Fetched
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

_CONTRACT_COLUMNS = [c for c in CHAIN_COLUMNS if c != "quote_ts"]


def write_chain(
    conn: Connection, warehouse: Warehouse, symbol: str, fetched: Fetched, snapshot
) -> Written:
    """Validate one symbol's chain, append it to the history and make it the latest chain.

    The latest-chain upsert only overwrites older rows, and contracts that were not in this
    snapshot are removed only if they are older than it: replaying an old partition (a backfill,
    a retry) can never replace a fresher chain.
    """
    validated = validate_chain(
        fetched.frame.assign(symbol=symbol, provider=fetched.provider), snapshot
    )
    chain = validated.frame[_CONTRACT_COLUMNS]
    written = warehouse.upsert(conn, "option_snapshots", chain.assign(snapshot_ts=snapshot))
    warehouse.upsert(
        conn,
        "option_contracts",
        chain.assign(last_updated=snapshot),
        update_where_newer="last_updated",
    )
    contracts = tables.option_contracts
    conn.execute(
        sa.delete(contracts).where(
            contracts.c.symbol == symbol, contracts.c.last_updated < warehouse.instant(snapshot)
        )
    )
    return Written(rows=written, validated=validated)


@dg.asset(
    group_name="options",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    partitions_def=calendar.snapshot_partitions(),
    pool="chain_providers",
    op_tags=queues.FETCH,
    description="Option-chain snapshots of the S&P 500, one partition per 15-minute window of "
    "regular trading hours: every contract to `option_snapshots` (history) and the latest per "
    "contract to `option_contracts`. Bad rows are rejected and counted, never written.",
    metadata=asset_metadata("option_contracts"),
)
def option_chains(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    chain_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    snapshot = calendar.snapshot_instant(context.partition_key)
    with warehouse.open() as wh:
        symbols = universe_symbols(wh, "in_sp500", config.symbols)
        summary = run_fan_out(
            context,
            chain_data,
            wh,
            symbols,
            lambda chain, symbol: chain.option_chain(symbol, snapshot),
            lambda conn, symbol, fetched: write_chain(conn, wh, symbol, fetched, snapshot),
            start_with=config.start_with_provider,
        )
    return dg.MaterializeResult(
        metadata=summary.metadata(snapshot_ts=dg.MetadataValue.text(snapshot.isoformat()))
    )
