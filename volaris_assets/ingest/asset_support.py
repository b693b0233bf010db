"""What every per-symbol ingestion asset shares: run config, symbol selection, the fan-out call."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from volaris_assets.ingest.fanout import RunIdentity, SinkFn, fan_out
from volaris_assets.ingest.interrupts import run_interruptibly
from volaris_assets.ingest.summary import RunSummary
from volaris_assets.providers.resilience import FallbackChain, Fetched
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.symbols import InvalidSymbol, normalize_symbol
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

OWNERS = ["team:data-platform"]
SCHWAB_WARNING_DAYS = 2.0


class IngestConfig(dg.Config):
    """Run config shared by the per-symbol assets; the retry sensor fills both fields."""

    symbols: list[str] = Field(
        default_factory=list,
        description="Restrict the run to these symbols (must be in the asset's universe).",
    )
    start_with_provider: str | None = Field(
        default=None, description="Try this provider first (e.g. the fallback, on a retry)."
    )


def table_schema(table_name: str) -> dg.TableSchema:
    """The warehouse table's columns as Dagster table-schema metadata."""
    table = tables.metadata.tables[table_name]
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=str(column.type).lower(),
                constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
            )
            for column in table.columns
        ]
    )


def asset_metadata(table_name: str) -> dict[str, Any]:
    return {
        "dagster/column_schema": table_schema(table_name),
        "dagster/table_name": table_name,
    }


def universe_symbols(warehouse: Warehouse, flag: str, requested: list[str]) -> list[str]:
    """The symbols a run covers: the universe (liquid first), or the requested subset of it.

    A requested symbol that is malformed or outside the universe is a configuration error: the
    run fails before any write with every offending entry listed.
    """
    column = tables.tickers.c[flag]
    query = (
        sa.select(tables.tickers.c.symbol)
        .where(column.is_(True), tables.tickers.c.is_active.is_(True))
        .order_by(tables.tickers.c.liquidity_rank.asc().nulls_last(), tables.tickers.c.symbol)
    )
    with warehouse.engine.connect() as conn:
        universe = [row[0] for row in conn.execute(query)]
    if not universe:
        raise dg.Failure(
            description=f"the {flag} universe is empty: materialize the universe assets first "
            "(sp500_constituents, scan_universe)"
        )
    if not requested:
        return universe
    members, bad = set(universe), []
    chosen: list[str] = []
    for entry in requested:
        try:
            symbol = normalize_symbol(entry)
        except InvalidSymbol as error:
            bad.append(str(error))
            continue
        if symbol not in members:
            bad.append(f"{symbol} is not in the {flag} universe")
        elif symbol not in chosen:
            chosen.append(symbol)
    if bad:
        raise dg.Failure(description="invalid symbols in run config: " + "; ".join(bad[:20]))
    return chosen


def run_fan_out(
    context: dg.AssetExecutionContext,
    market: MarketDataResource,
    warehouse: Warehouse,
    symbols: list[str],
    call: Callable[[FallbackChain, str], Awaitable[Fetched]],
    sink: SinkFn,
    *,
    start_with: str | None = None,
) -> RunSummary:
    """Fetch and write every symbol of this step; returns the outcomes rolled up."""
    identity = RunIdentity(
        run_id=context.run.run_id,
        asset=context.asset_key.to_user_string(),
        partition=_partition_label(context),
    )

    async def main() -> list:
        async with market.open(start_with=start_with, logger=context.log) as chain:
            return await fan_out(
                symbols,
                lambda symbol: call(chain, symbol),
                sink,
                warehouse,
                identity,
                concurrency=market.concurrency,
            )

    days_left = market.schwab_token_days_left()
    if days_left is not None and days_left <= SCHWAB_WARNING_DAYS:
        context.log.warning(
            "Schwab refresh token lapses in %.1f days: redo the browser login", days_left
        )
    started = time.perf_counter()
    outcomes = run_interruptibly(main)
    summary = RunSummary(outcomes, time.perf_counter() - started, schwab_token_days_left=days_left)
    context.log.info(
        "%s %s: %d ok, %d failed %s, %d rows written, %d rejected",
        identity.asset,
        identity.partition,
        len(summary.ok),
        len(summary.failed),
        summary.failures_by_category(),
        summary.rows_written,
        summary.rows_rejected,
    )
    fail_below_threshold(summary, market.min_success_rate, identity)
    return summary


def fail_below_threshold(summary: RunSummary, threshold: float, identity: RunIdentity) -> None:
    """Fail the run when too few symbols were written: a provider outage must not mark the
    partition materialized. The outcome rows are already committed, so the retry sensor and
    the run-failure notification both have what they need."""
    if not summary.outcomes or summary.success_rate >= threshold:
        return
    categories = ", ".join(f"{k} {v}" for k, v in summary.failures_by_category().items())
    raise dg.Failure(
        description=(
            f"{identity.asset} {identity.partition}: {len(summary.ok)} of "
            f"{len(summary.outcomes)} symbols written ({summary.success_rate:.0%}, below the "
            f"{threshold:.0%} threshold of VOLARIS_MIN_SUCCESS_RATE); failures: {categories}"
        ),
        metadata=summary.metadata(),
    )


def _partition_label(context: dg.AssetExecutionContext) -> str:
    """The partition key, or `start..end` for a backfill range run, or "-" if unpartitioned."""
    if context.has_partition_key:
        return context.partition_key
    if context.has_partition_key_range:
        keys = context.partition_key_range
        return f"{keys.start}..{keys.end}"
    return "-"
