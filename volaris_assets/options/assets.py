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
    """Validate one symbol's chain, make it the symbol's whole snapshot in the history and,
    unless a fresher snapshot is stored, its latest chain.

    A snapshot written again replaces the symbol's rows at that instant instead of adding to
    them: written once from the simulated market and again from Schwab (the first offline run,
    then keys), the two chains' contracts would otherwise stand side by side as one snapshot,
    and IV would be measured on the mixture. Replaying an old partition (a backfill, a retry)
    never touches a fresher latest chain, neither overwriting its contracts nor adding ones it
    no longer lists.
    """
    validated = validate_chain(
        fetched.frame.assign(symbol=symbol, provider=fetched.provider), snapshot
    )
    chain = validated.frame[_CONTRACT_COLUMNS]
    instant = warehouse.instant(snapshot)
    snapshots, contracts = tables.option_snapshots, tables.option_contracts
    conn.execute(
        sa.delete(snapshots).where(snapshots.c.symbol == symbol, snapshots.c.snapshot_ts == instant)
    )
    written = warehouse.upsert(conn, "option_snapshots", chain.assign(snapshot_ts=snapshot))
    fresher = sa.select(contracts.c.symbol).where(
        contracts.c.symbol == symbol, contracts.c.last_updated > instant
    )
    if conn.execute(fresher.limit(1)).first() is None:
        conn.execute(sa.delete(contracts).where(contracts.c.symbol == symbol))
        warehouse.upsert(
            conn,
            "option_contracts",
            chain.assign(last_updated=snapshot),
            # A fresher chain committed by another run since the check above still wins.
            update_where_newer="last_updated",
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
