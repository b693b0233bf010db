"""Real-time quotes: the latest quote per symbol (the bot's `/price`) and its intraday tape.

Each refresh asks for the S&P 500, the ETF list and every symbol with an active price alert
through the providers' multi-symbol endpoints (Schwab `/quotes`, Polygon's stocks snapshot,
Alpaca's snapshots), in batches of as many symbols as every provider of the chain takes: one
request per batch, and so one turn of the shared provider budget, which puts 520 symbols in three
requests. The providers are the intraday ones (`VOLARIS_INTRADAY_PROVIDERS`): the accounts that
serve minute bars serve quotes, and an intraday provider without a batch endpoint is passed over.

It does not use the per-symbol fan-out: that writes an outcome row per symbol per run, half a
million rows a day at a 60 s cadence, for a retry sensor that the next refresh, a minute later,
makes moot. The batch is the unit: each is written in one transaction (the latest quotes, only
where newer than the stored ones; the tape; the batch's rejections). A batch every provider
fails is counted by category and its symbols keep their last quote until the next refresh.
"""

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets import calendar
from volaris_assets.ingest.asset_support import OWNERS, asset_metadata
from volaris_assets.ingest.interrupts import run_interruptibly
from volaris_assets.ingest.validation import validate_quotes
from volaris_assets.providers import registry
from volaris_assets.providers.base import QUOTE_COLUMNS, ProviderError
from volaris_assets.providers.resilience import Fetched
from volaris_assets.providers.simulated import SimulatedProvider
from volaris_assets.redaction import redact
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.runtime import peak_rss_mb
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now
from volaris_assets.warehouse.tables import price_alerts

# How long the tape keeps a minute: a week of sessions, ~1M rows for 520 symbols.
HISTORY_DAYS = 7
# Reason recorded for a requested symbol the provider's answer left out.
NOT_RETURNED = "not_returned"


def quote_symbols(warehouse: Warehouse) -> list[str]:
    """Every symbol with an active price alert (first: someone is waiting on those), then the
    active S&P 500 members and ETFs, liquid first."""
    alerts = sa.select(price_alerts.c.symbol).where(
        sa.or_(price_alerts.c.armed.is_(True), price_alerts.c.repeating.is_(True))
    )
    tickers = tables.tickers
    universe = (
        sa.select(tickers.c.symbol)
        .where(tickers.c.is_active.is_(True), tickers.c.in_sp500.is_(True))
        .order_by(tickers.c.liquidity_rank.asc().nulls_last(), tickers.c.symbol)
    )
    with warehouse.engine.connect() as conn:
        alerted = sorted({row[0] for row in conn.execute(alerts)})
        listed = [row[0] for row in conn.execute(universe)]
    return list(dict.fromkeys([*alerted, *listed]))


def quote_providers(order: Sequence[str]) -> list[str]:
    """The providers of `order` that have a batch quote endpoint (a `QUOTE_BATCH`)."""
    return [
        name
        for name in order
        if name == registry.SIMULATED
        or (
            name in registry.PROVIDER_MODULES and hasattr(registry.load_module(name), "QUOTE_BATCH")
        )
    ]


def batch_size(providers: Sequence[str]) -> int:
    """The most symbols per request that every provider of the chain takes, so that a batch
    can fall back from one to the next unchanged."""
    return min(
        SimulatedProvider.max_quote_batch
        if name == registry.SIMULATED
        else registry.load_module(name).QUOTE_BATCH
        for name in providers
    )


@dataclass
class Refresh:
    """What one refresh did, for the metadata and the success threshold."""

    requested: int = 0
    quoted: int = 0
    batches: int = 0
    requests: int = 0
    providers: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    failed_symbols: list[str] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    newest: pd.Timestamp | None = None

    @property
    def success_rate(self) -> float:
        return self.quoted / self.requested if self.requested else 1.0


def rejections(frame: pd.DataFrame, kept: pd.DataFrame, batch: Sequence[str]) -> list[tuple]:
    """(symbol, reason, example) for each row validation refused and each requested symbol the
    answer left out, so that every symbol without a fresh quote says why."""
    refused = frame[~frame["row"].isin(kept["row"])]
    found = []
    for index in range(len(refused)):
        row = refused.iloc[[index]]
        alone = validate_quotes(row, batch).rejected
        reason = next(iter(alone), "duplicate_key")  # a row valid alone was a duplicate
        found.append((str(row["symbol"].iloc[0]), reason, row.to_json(orient="records")))
    answered = set(frame["symbol"])
    found += [(symbol, NOT_RETURNED, "") for symbol in batch if symbol not in answered]
    return found


def write_batch(
    conn: Connection,
    warehouse: Warehouse,
    run: tuple[str, str],
    kept: pd.DataFrame,
    refused: list[tuple],
) -> None:
    """The batch's latest quotes (never over a newer one), its tape minutes and rejections."""
    now = utc_now()
    latest = kept[list(QUOTE_COLUMNS)].assign(updated_at=now)
    warehouse.upsert(conn, "quotes", latest, update_where_newer="quote_ts")
    tape = kept[list(QUOTE_COLUMNS)].assign(minute=kept["quote_ts"].dt.floor("min"))
    warehouse.upsert(conn, "quote_history", tape)
    # One row per (symbol, reason), as the table's key wants: a symbol sent three times has two
    # duplicates, and a key that is no ticker is recorded as "-" with its text in the example.
    counts: Counter[tuple[str, str]] = Counter()
    examples: dict[tuple[str, str], str] = {}
    for symbol, reason, example in refused:
        key = (symbol if len(symbol) <= 12 else "-", reason)
        counts[key] += 1
        examples.setdefault(key, example)
    run_id, asset = run
    warehouse.upsert(
        conn,
        "row_rejections",
        [
            {
                "run_id": run_id,
                "asset": asset,
                "partition": "-",
                "symbol": symbol,
                "reason": reason,
                "count": count,
                "example": redact(examples[symbol, reason])[:200],
                "recorded_at": now,
            }
            for (symbol, reason), count in counts.items()
        ],
    )


def prune_history(warehouse: Warehouse, newest: datetime) -> int:
    """Drop tape minutes more than HISTORY_DAYS older than `newest` (the refresh's newest
    quote, not the wall clock: a replay of past data keeps its tape); returns the rows
    deleted."""
    history = tables.quote_history
    cutoff = warehouse.instant(newest - timedelta(days=HISTORY_DAYS))
    return warehouse.run_transaction(
        lambda conn: conn.execute(sa.delete(history).where(history.c.minute < cutoff)).rowcount
    )


async def fetch_batches(
    market: MarketDataResource,
    batches: list[list[str]],
    as_of: datetime,
    logger: dg.DagsterLogManager,
) -> list[Fetched | ProviderError]:
    """Every batch through the fallback chain, `market.concurrency` requests at once."""
    async with market.open(logger=logger, priority="fresh") as chain:
        limit = asyncio.Semaphore(market.concurrency)

        async def one(batch: list[str]) -> Fetched | ProviderError:
            async with limit:
                try:
                    return await chain.quotes(batch, as_of)
                except ProviderError as error:
                    return error

        return await asyncio.gather(*(one(batch) for batch in batches))


@dg.asset(
    group_name="quotes",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    description="The latest quote (last, bid, ask, volume, previous close) of every S&P 500 "
    "member, ETF and symbol with an active price alert, fetched in batches through the intraday "
    "providers' multi-symbol endpoints; upserted into `quotes` (the bot's /price) and appended "
    f"to `quote_history` (one row per symbol per minute, {HISTORY_DAYS} days).",
    metadata=asset_metadata("quotes"),
)
def quotes(
    context: dg.AssetExecutionContext,
    intraday_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    started = time.perf_counter()
    providers = quote_providers(intraday_data.provider_order())
    if not providers:
        raise dg.Failure(
            description=f"no provider in VOLARIS_INTRADAY_PROVIDERS ({intraday_data.providers!r}) "
            "has a batch quote endpoint: add schwab, polygon or alpaca (or simulated)"
        )
    passed_over = [p for p in intraday_data.provider_order() if p not in providers]
    if passed_over:
        context.log.warning("no batch quotes from %s: passed over", ", ".join(passed_over))
    size = batch_size(providers)
    as_of = datetime.now(calendar.UTC)
    run = (context.run.run_id, context.asset_key.to_user_string())
    refresh = Refresh()
    with warehouse.open() as wh:
        symbols = quote_symbols(wh)
        if not symbols:
            raise dg.Failure(description="nothing to quote: materialize sp500_constituents first")
        batches = [symbols[i : i + size] for i in range(0, len(symbols), size)]
        answers = run_interruptibly(
            lambda: fetch_batches(intraday_data, batches, as_of, context.log)
        )
        for batch, answer in zip(batches, answers, strict=True):
            _settle(context, wh, run, batch, answer, refresh)
        pruned = 0 if refresh.newest is None else prune_history(wh, refresh.newest)
    refresh.requested, refresh.batches = len(symbols), len(batches)
    metadata = _metadata(refresh, time.perf_counter() - started, pruned, intraday_data)
    context.log.info(
        "quotes: %d of %d symbols in %d requests; %d rejected",
        refresh.quoted,
        refresh.requested,
        refresh.requests,
        sum(refresh.rejected.values()),
    )
    if refresh.success_rate < intraday_data.min_success_rate:
        raise dg.Failure(
            description=f"quotes: {refresh.quoted} of {refresh.requested} symbols quoted "
            f"({refresh.success_rate:.0%}, below VOLARIS_MIN_SUCCESS_RATE "
            f"{intraday_data.min_success_rate:.0%}); failures: {dict(refresh.failures)}",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


def _settle(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    run: tuple[str, str],
    batch: list[str],
    answer: Fetched | ProviderError,
    refresh: Refresh,
) -> None:
    """Validate and write one batch's answer, or count its failure."""
    if isinstance(answer, ProviderError):
        refresh.requests += int(getattr(answer, "attempts", 1))
        refresh.failures[answer.category.value] += 1
        refresh.failed_symbols += batch
        context.log.warning(
            "quotes for %d symbols failed: %s", len(batch), redact(str(answer))[:300]
        )
        return
    frame = answer.frame.assign(provider=answer.provider, row=range(len(answer.frame)))
    validated = validate_quotes(frame, batch)
    kept = validated.frame
    refused = rejections(frame, kept, batch)
    warehouse.run_transaction(lambda conn: write_batch(conn, warehouse, run, kept, refused))
    refresh.requests += answer.attempts
    refresh.providers[answer.provider] += 1
    refresh.quoted += len(kept)
    refresh.rejected.update(reason for _, reason, _ in refused)
    if not kept.empty:
        newest = kept["quote_ts"].max()
        refresh.newest = newest if refresh.newest is None else max(refresh.newest, newest)


def _metadata(
    refresh: Refresh, duration_s: float, pruned: int, market: MarketDataResource
) -> dict[str, dg.MetadataValue]:
    metadata = {
        "symbols_requested": dg.MetadataValue.int(refresh.requested),
        "symbols_quoted": dg.MetadataValue.int(refresh.quoted),
        "success_rate": dg.MetadataValue.float(round(refresh.success_rate, 4)),
        "batches": dg.MetadataValue.int(refresh.batches),
        "requests": dg.MetadataValue.int(refresh.requests),
        "providers": dg.MetadataValue.json(dict(refresh.providers)),
        "failures_by_category": dg.MetadataValue.json(dict(refresh.failures)),
        "failed_symbols": dg.MetadataValue.json(sorted(refresh.failed_symbols)[:200]),
        "rows_rejected": dg.MetadataValue.int(sum(refresh.rejected.values())),
        "rejections_by_reason": dg.MetadataValue.json(dict(refresh.rejected.most_common())),
        "history_rows_pruned": dg.MetadataValue.int(pruned),
        "duration_s": dg.MetadataValue.float(round(duration_s, 3)),
        "peak_rss_mb": dg.MetadataValue.float(peak_rss_mb()),
    }
    if refresh.newest is not None:
        metadata["newest_quote_ts"] = dg.MetadataValue.text(refresh.newest.isoformat())
    if budgets := market.budget_table():
        metadata["provider_budget"] = dg.MetadataValue.json(budgets)
    return metadata
