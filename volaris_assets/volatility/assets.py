"""Implied-volatility metrics per symbol and session: the numbers the bot's IV answers quote.

`iv_metrics` holds one row per session, measured on the session's last chain snapshot: the
end-of-day value, and the only history IV rank and percentile are computed against.
`iv_metrics_intraday` measures the latest stored snapshot while the session trades (every
IV_METRICS_JOB_INTERVAL_MINUTES) into a table of its own, so an intraday value can never stand in
for a close in that history, whatever runs failed.
"""

import asyncio
from datetime import datetime

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets import calendar
from volaris_assets.cluster import queues
from volaris_assets.history.cold import ColdStore
from volaris_assets.history.query import VIEW as HISTORY_VIEW
from volaris_assets.history.query import open_history
from volaris_assets.history.resource import HistoryResource
from volaris_assets.ingest.asset_support import (
    OWNERS,
    IngestConfig,
    asset_metadata,
    run_fan_out,
    universe_symbols,
)
from volaris_assets.ingest.fanout import Written
from volaris_assets.ingest.range_metadata import SessionRows, range_metadata
from volaris_assets.ingest.validation import validate_chain
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import session_range
from volaris_assets.providers.base import CHAIN_COLUMNS, ErrorCategory, ProviderError
from volaris_assets.providers.resilience import FallbackChain, Fetched, SourceFailed
from volaris_assets.providers.simulated import PROVIDER as SIMULATED
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.volatility.metrics import chain_metrics
from volaris_assets.volatility.ranking import with_rank, write_ranked
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse


def stored_close_chain(
    warehouse: Warehouse, symbol: str, session: calendar.Session, store: ColdStore | None = None
) -> pd.DataFrame:
    """The session's last stored snapshot for `symbol`; empty if none was taken. `store`: the
    cold tier, given when the session was compacted. Both tiers are read then, since the hot
    table may hold a window fetched again after compaction while the file holds the close."""
    if store is None:
        return _hot_close_chain(warehouse, symbol, session)
    with open_history(
        warehouse, store, symbols=[symbol], first=session.day, last=session.day
    ) as history:
        if history.problems:  # verified as the run began: gone since
            raise ProviderError(
                ErrorCategory.BAD_DATA,
                f"the cold file of {session.day} cannot be read: {history.problems[0]}",
            )
        stored = history.sql(
            f"SELECT * FROM {HISTORY_VIEW} WHERE snapshot_ts = "
            f"(SELECT max(snapshot_ts) FROM {HISTORY_VIEW} WHERE snapshot_ts <= ?)",
            [session.close],
        )
    # The cold tier keeps prices and IV as float32; the measurement works in float64.
    return stored.astype({c: "float64" for c in stored.columns if stored[c].dtype == "float32"})


def readable_compacted_sessions(store: ColdStore, sessions: list[calendar.Session]) -> set[str]:
    """The compacted sessions among `sessions` (listed once: an object store answers each
    listing over the network), each file's footer checked. A compacted session is measured
    from its file, never from a provider's replay (which would overwrite what a history
    provider gave with, say, the simulated market), so a file that cannot be read fails the
    run by name before anything is measured."""
    manifests = store.manifests(sessions[0].day, sessions[-1].day)
    unreadable = [problem for m in manifests if (problem := store.verify(m))]
    if unreadable:
        raise dg.Failure(
            description=(
                f"{len(unreadable)} compacted session file(s) cannot be read: "
                f"{'; '.join(unreadable)}. A compacted session is measured from its file only: "
                "restore the file (its manifest gives its rows and key checksum), or leave the "
                "session out of the range."
            )
        )
    return {manifest.session for manifest in manifests}


def _hot_close_chain(warehouse: Warehouse, symbol: str, session: calendar.Session) -> pd.DataFrame:
    snaps = tables.option_snapshots
    in_session = sa.and_(
        snaps.c.symbol == symbol,
        snaps.c.snapshot_ts >= warehouse.instant(session.open),
        snaps.c.snapshot_ts <= warehouse.instant(session.close),
    )
    latest = sa.select(sa.func.max(snaps.c.snapshot_ts)).where(in_session).scalar_subquery()
    query = sa.select(snaps).where(in_session, snaps.c.snapshot_ts == latest)
    return warehouse.read_frame(query)


async def session_chain(
    chain: FallbackChain,
    warehouse: Warehouse,
    symbol: str,
    session: calendar.Session,
    latest: calendar.Session,
    store: ColdStore | None,
) -> tuple[pd.DataFrame, str, int, datetime]:
    """The chain to measure a session by: its last stored snapshot (either tier), else the
    provider's at close.

    Live providers only know the current chain, so for an older session without a stored
    snapshot only the simulated market (which can replay any day) has an answer.
    """
    stored = await asyncio.to_thread(stored_close_chain, warehouse, symbol, session, store)
    if not stored.empty:
        return stored, str(stored["provider"].iloc[0]), 0, _snapshot_time(stored)
    fetched = await chain.option_chain(symbol, session.close)
    if fetched.provider != SIMULATED and session.day != latest.day:
        raise ProviderError(
            ErrorCategory.NO_DATA,
            f"no stored snapshot for {session.day} and {fetched.provider} has no history",
            provider=fetched.provider,
        )
    return fetched.frame, fetched.provider, fetched.attempts, session.close


def _snapshot_time(stored: pd.DataFrame) -> datetime:
    """The UTC instant of a stored snapshot (SQLite gives it back naive)."""
    as_of = pd.Timestamp(stored["snapshot_ts"].iloc[0])
    return (as_of.tz_localize("UTC") if as_of.tzinfo is None else as_of).to_pydatetime()


def _measured(frame: pd.DataFrame, provider: str, as_of: datetime) -> dict:
    """The `chain_metrics` of a chain, validated as an ingested one is."""
    valid = validate_chain(frame[list(CHAIN_COLUMNS[:-1])].assign(provider=provider), as_of)
    return chain_metrics(valid.frame, as_of)


@dg.asset(
    group_name="volatility",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[dg.AssetDep(option_chains, partition_mapping=dg.TimeWindowPartitionMapping())],
    partitions_def=calendar.session_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="chain_providers",
    op_tags=queues.COMPUTE,
    description="Per symbol and session: 30-day constant-maturity ATM IV (total-variance "
    "interpolation), IV rank and IV percentile over the trailing 252 sessions, the 7/30/60/90-day "
    "term structure, 25-delta skew and the expected move to the nearest expiration.",
    metadata=asset_metadata("iv_metrics"),
)
def iv_metrics(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    chain_data: MarketDataResource,
    warehouse: WarehouseResource,
    history: HistoryResource,
) -> dg.MaterializeResult:
    sessions = session_range(context)
    latest = calendar.last_completed_session(datetime.now(calendar.UTC))
    store = history.store()
    compacted = readable_compacted_sessions(store, sessions)
    with warehouse.open() as wh:
        symbols = universe_symbols(wh, "in_sp500", config.symbols)

        async def fetch(chain: FallbackChain, symbol: str) -> Fetched:
            rows, providers, attempts = [], set(), 0
            for session in sessions:
                frame, provider, tries, as_of = await session_chain(
                    chain,
                    wh,
                    symbol,
                    session,
                    latest,
                    store if session.day.isoformat() in compacted else None,
                )
                attempts += tries
                providers.add(provider)
                rows.append(
                    {
                        "symbol": symbol,
                        "date": session.day,
                        "provider": provider,
                        **_measured(frame, provider, as_of),
                    }
                )
            return _Metrics(pd.DataFrame(rows), ",".join(sorted(providers)), attempts)

        def sink(conn: Connection, symbol: str, fetched: Fetched) -> Written:
            return Written(rows=write_ranked(conn, wh, symbol, fetched.frame))

        summary = run_fan_out(
            context, chain_data, wh, symbols, fetch, sink, start_with=config.start_with_provider
        )
        metrics = tables.iv_metrics
        per_session = range_metadata(
            context, wh, SessionRows(metrics, metrics.c.date), symbols, sessions
        )
    return dg.MaterializeResult(
        metadata=summary.metadata(sessions=dg.MetadataValue.int(len(sessions)), **per_session)
    )


@dg.asset(
    group_name="volatility",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[dg.AssetDep(option_chains, partition_mapping=dg.TimeWindowPartitionMapping())],
    partitions_def=calendar.session_partitions(),
    op_tags=queues.COMPUTE,
    description="The `iv_metrics` numbers during the session, from each symbol's latest stored "
    "chain snapshot (table `iv_metrics_intraday`, one row per symbol and snapshot measured); IV "
    "rank and percentile against the end-of-day history. Reads the warehouse only.",
    metadata=asset_metadata("iv_metrics_intraday"),
)
def iv_metrics_intraday(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    chain_data: MarketDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    session = calendar.session(calendar.session_day(context.partition_key))
    with warehouse.open() as wh:
        symbols = universe_symbols(wh, "in_sp500", config.symbols)

        async def fetch(_chain: FallbackChain, symbol: str) -> Fetched:
            stored = await asyncio.to_thread(stored_close_chain, wh, symbol, session)
            if stored.empty:
                missing = ProviderError(
                    ErrorCategory.NO_DATA, f"no chain snapshot stored for {session.day} yet"
                )
                raise SourceFailed(missing, provider="", attempts=0)  # nothing was sent
            provider, as_of = str(stored["provider"].iloc[0]), _snapshot_time(stored)
            row = {
                "symbol": symbol,
                "as_of": as_of,
                "date": session.day,
                "provider": provider,
                **_measured(stored, provider, as_of),
            }
            return _Metrics(pd.DataFrame([row]), provider, attempts=0)  # a warehouse read

        def sink(conn: Connection, symbol: str, fetched: Fetched) -> Written:
            frame = with_rank(conn, wh, symbol, fetched.frame, tables.iv_metrics_intraday)
            return Written(rows=wh.upsert(conn, "iv_metrics_intraday", frame))

        summary = run_fan_out(context, chain_data, wh, symbols, fetch, sink, sends_requests=False)
    return dg.MaterializeResult(metadata=summary.metadata())


class _Metrics:
    """A `Fetched` whose frame is already the metrics rows of one symbol."""

    def __init__(self, frame: pd.DataFrame, provider: str, attempts: int) -> None:
        self.frame, self.provider, self.attempts = frame, provider, attempts
