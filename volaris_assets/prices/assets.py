"""Price bars: daily bars per session, and 1-minute/5-minute bars within the session."""

from datetime import datetime, timedelta

import dagster as dg
import pandas as pd
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
from volaris_assets.ingest.range_metadata import SessionRows, range_metadata
from volaris_assets.ingest.validation import validate_bars
from volaris_assets.prices.bar_batches import BarBatches
from volaris_assets.providers.base import BAR_COLUMNS, aggregate_bars
from volaris_assets.providers.resilience import Fetched
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse


def session_range(context: dg.AssetExecutionContext) -> list[calendar.Session]:
    """The sessions this step covers (one, or a backfill's range)."""
    keys = context.partition_key_range
    return calendar.sessions_between(
        calendar.session_day(keys.start), calendar.session_day(keys.end)
    )


def _bar_sink(timeframe: str):
    def sink(conn: Connection, symbol: str, fetched: Fetched, warehouse: Warehouse) -> Written:
        frame = fetched.frame.assign(symbol=symbol, timeframe=timeframe, provider=fetched.provider)
        validated = validate_bars(frame)
        rows = warehouse.upsert(conn, "price_bars", validated.frame[list(BAR_COLUMNS)])
        return Written(rows=rows, validated=validated)

    return sink


@dg.asset(
    group_name="prices",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    partitions_def=calendar.session_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="daily_providers",
    op_tags=queues.FETCH,
    description="Daily OHLCV bars (timeframe `1d`, stamped at the session date 00:00 UTC) for the "
    "S&P 500, one partition per NYSE session. A backfill runs as one run over its whole range.",
    metadata=asset_metadata("price_bars"),
)
def daily_bars(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    daily_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    sessions = session_range(context)
    calendar.require_closed(sessions, datetime.now(calendar.UTC))
    start = pd.Timestamp(sessions[0].day, tz="UTC").to_pydatetime()
    end = pd.Timestamp(sessions[-1].day + timedelta(days=1), tz="UTC").to_pydatetime()
    sink = _bar_sink("1d")
    with warehouse.open() as wh:
        symbols = universe_symbols(wh, "in_sp500", config.symbols)
        summary = run_fan_out(
            context,
            daily_data,
            wh,
            symbols,
            BarBatches("1d", dict.fromkeys(symbols, start), end).fetch,
            lambda conn, symbol, fetched: sink(conn, symbol, fetched, wh),
            start_with=config.start_with_provider,
        )
        bars = tables.price_bars
        daily = SessionRows(bars, bars.c.ts, bars.c.timeframe == "1d")
        per_session = range_metadata(context, wh, daily, symbols, sessions)
    return dg.MaterializeResult(
        metadata=summary.metadata(sessions=dg.MetadataValue.int(len(sessions)), **per_session)
    )


@dg.asset(
    group_name="prices",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    partitions_def=calendar.session_partitions(),
    backfill_policy=dg.BackfillPolicy.multi_run(max_partitions_per_run=5),
    pool="intraday_providers",
    op_tags=queues.FETCH,
    description="1-minute bars of the session, fetched incrementally (only bars newer than the "
    "stored ones), plus the 5-minute bars rebuilt from them.",
    metadata=asset_metadata("price_bars"),
)
def intraday_bars(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    intraday_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    sessions = session_range(context)
    now = datetime.now(calendar.UTC)
    calendar.require_opened(sessions, now)
    window_end = min(sessions[-1].close, now)
    with warehouse.open() as wh:
        symbols = universe_symbols(wh, "in_sp500", config.symbols)
        starts = _resume_points(wh, symbols, sessions, now)
        due = list(starts)
        opens = {s.open for s in sessions}
        incremental = sum(1 for start in starts.values() if start not in opens)

        batches = BarBatches("1m", starts, window_end)

        def sink(conn: Connection, symbol: str, fetched: Fetched) -> Written:
            written = _bar_sink("1m")(conn, symbol, fetched, wh)
            if not fetched.frame.empty:
                written.rows += _rebuild_five_minute(conn, wh, symbol, fetched.frame["ts"])
            return written

        summary = run_fan_out(
            context,
            intraday_data,
            wh,
            due,
            batches.fetch,
            sink,
            start_with=config.start_with_provider,
        )
        bars = tables.price_bars
        minutes = SessionRows(bars, bars.c.ts, bars.c.timeframe.in_(["1m", "5m"]))
        per_session = range_metadata(context, wh, minutes, symbols, sessions)
    return dg.MaterializeResult(
        metadata=summary.metadata(
            window_end=dg.MetadataValue.text(window_end.isoformat()),
            incremental_symbols=dg.MetadataValue.int(incremental),
            up_to_date_symbols=dg.MetadataValue.int(len(symbols) - len(due)),
            **per_session,
        )
    )


def _resume_points(
    wh: Warehouse, symbols: list[str], sessions: list[calendar.Session], now: datetime
) -> dict[str, datetime]:
    """Where each symbol's fetch starts: after its newest stored minute in the first session of
    the range that is not complete, or at that session's open if it has none. A symbol whose
    every session is complete is left out: up to date. Per session, so a backfill range does
    not skip an earlier session because a later one is stored."""
    resume: dict[str, datetime] = {}
    pending = list(symbols)
    for session in sessions:
        end = min(session.close, now)
        stored = _latest_minute(wh, pending, session.open, end) if pending else {}
        complete = []
        for symbol in pending:
            start = stored[symbol] + timedelta(minutes=1) if symbol in stored else session.open
            # A bar that has not closed yet (at the close, or within the minute) is not a gap:
            # asking for it gets an empty answer, a `no_data` failure that would wipe the
            # partition's coverage after a re-run.
            if start + timedelta(minutes=1) <= end:
                resume[symbol] = start
            else:
                complete.append(symbol)
        pending = complete
    return resume


def _latest_minute(
    warehouse: Warehouse, symbols: list[str], start: datetime, end: datetime
) -> dict[str, datetime]:
    """The newest stored 1m bar per symbol inside the window (for incremental fetches)."""
    bars = tables.price_bars
    query = (
        sa.select(bars.c.symbol, sa.func.max(bars.c.ts))
        .where(
            # By symbol first: the primary key's order, so a seek per symbol, not a scan of
            # every stored minute.
            bars.c.symbol.in_(symbols),
            bars.c.timeframe == "1m",
            bars.c.ts >= warehouse.instant(start),
            bars.c.ts < warehouse.instant(end),
        )
        .group_by(bars.c.symbol)
    )
    with warehouse.engine.connect() as conn:
        return {
            symbol: pd.Timestamp(ts).tz_localize("UTC").to_pydatetime()
            if pd.Timestamp(ts).tzinfo is None
            else pd.Timestamp(ts).to_pydatetime()
            for symbol, ts in conn.execute(query)
            if ts is not None
        }


def _rebuild_five_minute(
    conn: Connection, warehouse: Warehouse, symbol: str, fetched_ts: pd.Series
) -> int:
    """Recompute, from the stored 1m bars, the 5m bars of the buckets the fetched minutes
    (`fetched_ts`) fall in: the first may hold minutes an earlier fetch stored, and no other
    bucket changed (rebuilding every later one made a backfilled session rewrite the sessions
    after it). Each 5m bar carries the provider of its own minutes (its last minute's)."""
    bars = tables.price_bars
    first = pd.Timestamp(fetched_ts.min()).floor("5min").to_pydatetime()
    end = (pd.Timestamp(fetched_ts.max()).floor("5min") + pd.Timedelta(minutes=5)).to_pydatetime()
    columns = ["ts", "open", "high", "low", "close", "volume", "provider"]
    rows = conn.execute(
        sa.select(*(bars.c[name] for name in columns))
        .where(
            bars.c.symbol == symbol,
            bars.c.timeframe == "1m",
            bars.c.ts >= warehouse.instant(first),
            bars.c.ts < warehouse.instant(end),
        )
        .order_by(bars.c.ts)
    ).all()
    if not rows:
        return 0
    minutes = pd.DataFrame(rows, columns=columns)
    minutes["ts"] = pd.to_datetime(minutes["ts"], utc=True)
    bucket = minutes["ts"].dt.floor("5min")
    five = aggregate_bars(
        minutes,
        bucket,
        symbol=symbol,
        timeframe="5m",
        provider=minutes.groupby(bucket, sort=True)["provider"].last().to_numpy(),
    )
    return warehouse.upsert(conn, "price_bars", five)
