"""What every per-symbol ingestion asset shares: run config, symbol selection, the fan-out call."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from volaris_assets.ingest.fanout import RunIdentity, SinkFn, SymbolOutcome, fan_out
from volaris_assets.ingest.interrupts import run_interruptibly
from volaris_assets.ingest.loop_lag import LoopLag, lag_warning
from volaris_assets.ingest.memory import watch_memory
from volaris_assets.ingest.progress import Progress, progress_line, reported, slow_run_warning
from volaris_assets.ingest.summary import RunSummary
from volaris_assets.providers.base import ErrorCategory
from volaris_assets.providers.budget import Priority
from volaris_assets.providers.resilience import FallbackChain, Fetched
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.symbols import InvalidSymbol, normalize_symbol
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

OWNERS = ["team:data-platform"]
# The tag the retry sensor puts on its runs (monitoring/retry.py reads the same constant).
RETRY_OF_TAG = "volaris/retry_of"
# What a user calls each `tickers` flag, and the asset that fills it (run-config errors name both).
UNIVERSE_NAMES = {
    "in_sp500": "S&P 500 universe (asset sp500_constituents)",
    "in_scan_universe": "wheel-scan universe (asset scan_universe)",
}
progress_log = logging.getLogger("volaris_assets.progress")
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
            description=f"the {UNIVERSE_NAMES[flag]} is empty: materialize the universe "
            "assets first (sp500_constituents, scan_universe)"
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
            bad.append(f"{symbol} is not in the {UNIVERSE_NAMES[flag]}")
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
    priority: Priority = "fresh",
    sends_requests: bool = True,
) -> RunSummary:
    """Fetch and write every symbol of this step, logging progress; returns the outcomes rolled
    up. `priority` is the asset's claim on the shared provider budget (see `work_priority`).
    `sends_requests=False` is for a step whose `call` reads the warehouse only: no provider's
    budget paces it, so there is no slow-run estimate to give."""
    identity = RunIdentity(
        run_id=context.run.run_id,
        asset=context.asset_key.to_user_string(),
        partition=_partition_label(context),
    )
    label = f"{identity.asset} {identity.partition}"
    progress = Progress(len(symbols))
    lag = LoopLag()

    async def main() -> list[SymbolOutcome]:
        async with market.open(
            start_with=start_with, logger=context.log, priority=work_priority(context, priority)
        ) as chain:
            if sends_requests:
                _warn_if_slow(context, market, chain, label, len(symbols))
            async with (
                lag.watching(),
                reported(progress, lambda line: announce(context, f"{label}: {line}")),
            ):
                return await fan_out(
                    symbols,
                    lambda symbol: call(chain, symbol),
                    sink,
                    warehouse,
                    identity,
                    concurrency=market.concurrency,
                    on_outcome=progress.record,
                )

    if sends_requests:
        _warn_if_budget_disagrees(context, market)
    days_left = market.schwab_token_days_left()
    if days_left is not None and days_left <= SCHWAB_WARNING_DAYS:
        context.log.warning(
            "Schwab refresh token lapses in %.1f days: redo the browser login", days_left
        )
    with watch_memory(context):
        outcomes = run_interruptibly(main)
    summary = RunSummary(
        outcomes,
        progress.elapsed_s,
        schwab_token_days_left=days_left,
        provider_budgets=market.budget_table(),
        loop_lag_max_s=lag.max_s,
    )
    if warning := lag_warning(label, lag.max_s):
        announce(context, warning, logging.WARNING)
    context.log.info(
        "%s: %s; %d rows written, %d rejected",
        label,
        progress_line(summary, progress.total),
        summary.rows_written,
        summary.rows_rejected,
    )
    fail_below_threshold(summary, market.min_success_rate, identity)
    return summary


def _warn_if_slow(
    context: dg.AssetExecutionContext,
    market: MarketDataResource,
    chain: FallbackChain,
    label: str,
    symbols: int,
) -> None:
    """Say up front when the primary's budget makes this run long, and what to change, rather
    than leave the operator to guess why it has not finished."""
    primary = chain.providers[0]
    warning = slow_run_warning(label, symbols, primary, market.rate_limit(primary))
    if warning is not None:
        announce(context, warning, logging.WARNING)


def _warn_if_budget_disagrees(
    context: dg.AssetExecutionContext, market: MarketDataResource
) -> None:
    """Say when a shared budget was last spent at another pace than this run's: processes that
    share one provider account were given different limits, so the account is paced at
    neither (read before the run, while the last reservation is still someone else's)."""
    for budget in market.budget_table():
        if budget["other_pace_per_min"] is not None:
            announce(
                context,
                f"{budget['provider']}'s shared budget was last spent at "
                f"{budget['other_pace_per_min']:g}/min by another process, this run paces it "
                f"at {budget['per_min']:g}/min: give every process that shares the account the "
                "same VOLARIS_RATE_LIMITS, VOLARIS_BUDGET_HOSTS and VOLARIS_BUDGET_PROCESSES",
                logging.WARNING,
            )


def announce(context: dg.AssetExecutionContext, message: str, level: int = logging.INFO) -> None:
    """Log to the run (the UI) and to `progress_log`, which `make materialize` shows on screen
    while Dagster's own event stream goes to its log file."""
    context.log.log(level, message)
    progress_log.log(level, message)


def work_priority(context: dg.AssetExecutionContext, default: Priority) -> Priority:
    """Fresh data goes before bulk work in the shared budget: a backfill range is bulk
    whatever the asset, and a retry of failed symbols is fresh (someone is waiting for them)."""
    if context.has_partition_key_range:
        return "bulk"
    if RETRY_OF_TAG in context.run.tags:
        return "fresh"
    return default


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
            f"{_write_failure_reason(summary)}"
        ),
        metadata=summary.metadata(),
    )


def _write_failure_reason(summary: RunSummary) -> str:
    """What the warehouse said of the first symbol it failed to write (a full disk, a lost
    server), once: too few of them in a row to end the run as the warehouse's failure, yet
    the fix is the warehouse's, not a provider's."""
    failed = next((o for o in summary.outcomes if o.error_type == ErrorCategory.WRITE_FAILED), None)
    return f". The warehouse: {failed.error_message}" if failed and failed.error_message else ""


def _partition_label(context: dg.AssetExecutionContext) -> str:
    """The partition key, or `start..end` for a backfill range run, or "-" if unpartitioned."""
    if context.has_partition_key:
        return context.partition_key
    if context.has_partition_key_range:
        keys = context.partition_key_range
        return f"{keys.start}..{keys.end}"
    return "-"
