"""The wheel-strategy premium scan over the scan universe (the seed's "database scan")."""

import dataclasses

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import Field
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
from volaris_assets.prices.assets import session_range
from volaris_assets.providers.base import ErrorCategory
from volaris_assets.providers.resilience import ChainExhausted, FallbackChain, Fetched
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.scan.liquidity import by_liquidity
from volaris_assets.scan.marks import mark_earlier_scans, mark_scan
from volaris_assets.scan.premiums import TopPremiums, WheelSettings, wheel_candidates
from volaris_assets.scan.results_csv import METADATA_KEY, BestPerSymbol, write_scan_csv
from volaris_assets.universe.assets import scan_universe
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now


class WheelConfig(IngestConfig):
    target_dte: int = Field(default=30, description="Expiration nearest this many days is scanned.")
    delta_min: float = Field(default=-0.35, description="Most negative put delta kept.")
    delta_max: float = Field(default=-0.15, description="Least negative put delta kept.")


async def fetch_wheel_chain(
    chain: FallbackChain, symbol: str, session: calendar.Session, settings: WheelSettings
) -> Fetched:
    """The puts a scan needs (`WheelSettings.request_window`), or the whole chain when no
    provider has a put inside the window: then the nearest expiration lies outside it, and only
    the whole chain can say which it is. `attempts` counts both requests."""
    window = settings.request_window(session.day)
    try:
        fetched = await chain.option_chain(symbol, session.close, window)
    except ChainExhausted as error:
        if ErrorCategory.NO_DATA not in {category for _, category in error.failures}:
            raise
        spent = error.attempts
    else:
        if not window.apply(fetched.frame).empty:
            return fetched
        spent = fetched.attempts
    whole = await chain.option_chain(symbol, session.close)
    return dataclasses.replace(whole, attempts=whole.attempts + spent)


# Built once: building a statement per symbol is a measurable part of the scan's own work.
_DELETE_SYMBOL = sa.delete(tables.stock_premiums).where(
    tables.stock_premiums.c.symbol == sa.bindparam("symbol")
)


def write_premiums(
    conn: Connection,
    warehouse: Warehouse,
    symbol: str,
    fetched: Fetched,
    session: calendar.Session,
    settings: WheelSettings,
) -> tuple[Written, pd.DataFrame]:
    """Replace the symbol's scan rows with this scan's, and mark the session they reflect: the
    table holds the latest scan, so a scan of an earlier session than the one marked (a
    backfill, a re-run) writes nothing; its candidates still reach the run's results CSV and
    metadata."""
    validated = validate_chain(
        fetched.frame.assign(symbol=symbol, provider=fetched.provider), session.close
    )
    now = utc_now()
    chosen = wheel_candidates(
        validated.frame, settings, stamp={"scan_date": session.day, "updated_at": now}
    )
    if not mark_scan(conn, warehouse, symbol, session.day, len(chosen), fetched.provider, now):
        return Written(rows=0, validated=validated), chosen
    conn.execute(_DELETE_SYMBOL, {"symbol": symbol})
    written = warehouse.upsert(conn, "stock_premiums", chosen)
    return Written(rows=written, validated=validated), chosen


@dg.asset(
    group_name="scan",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[scan_universe],
    partitions_def=calendar.session_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="chain_providers",
    op_tags=queues.FETCH,
    description="Wheel scan: for every scan-universe symbol (liquid first), the puts at the "
    "expiration nearest 30 DTE within a delta band (default -0.35..-0.15), with premium, "
    "quotes, greeks and monthly/annual return on collateral. `stock_premiums` holds the latest "
    "scan; a backfill range scans as of its last session.",
    metadata=asset_metadata("stock_premiums"),
)
def wheel_premiums(
    context: dg.AssetExecutionContext,
    config: WheelConfig,
    chain_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    try:
        settings = WheelSettings(config.target_dte, config.delta_min, config.delta_max)
    except ValueError as error:
        raise dg.Failure(description=f"invalid wheel scan config: {error}") from None
    session = session_range(context)[-1]
    top = TopPremiums()
    best = BestPerSymbol()
    with warehouse.open() as wh:
        mark_earlier_scans(wh)
        symbols = by_liquidity(
            wh, universe_symbols(wh, "in_scan_universe", config.symbols), session.day
        )

        def sink(conn: Connection, symbol: str, fetched: Fetched) -> Written:
            written, chosen = write_premiums(conn, wh, symbol, fetched, session, settings)

            def committed() -> None:
                top.offer(chosen)
                best.offer(symbol, chosen)

            # Once, and only for committed rows: a reconnect runs the sink again.
            written.after_commit = committed
            return written

        def results_csv() -> dict[str, dg.MetadataValue]:
            """Every symbol's outcome and best put as CSV, written even when the scan fails
            (a provider outage is when it is read), linked from the metadata."""
            path = write_scan_csv(
                context.instance.storage_directory(),
                wh,
                context.run.run_id,
                context.asset_key.to_user_string(),
                best,
            )
            context.log.info("scan results (one row per symbol): %s", path)
            return {METADATA_KEY: dg.MetadataValue.path(str(path))}

        try:
            summary = run_fan_out(
                context,
                chain_data,
                wh,
                symbols,
                lambda chain, symbol: fetch_wheel_chain(chain, symbol, session, settings),
                sink,
                start_with=config.start_with_provider,
                priority="bulk",
            )
        except dg.Failure as failure:
            raise dg.Failure(
                description=failure.description,
                metadata={**failure.metadata, **results_csv()},
            ) from None
        csv_metadata = results_csv()
    return dg.MaterializeResult(
        metadata=summary.metadata(
            scan_date=dg.MetadataValue.text(session.day.isoformat()),
            top_premiums=dg.MetadataValue.json(top.best()),
            **csv_metadata,
        )
    )
