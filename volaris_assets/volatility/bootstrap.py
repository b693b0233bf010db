"""IV history bootstrap: a year of `iv_metrics` history on the first day of an installation.

IV rank and percentile rank today's 30-day ATM IV among the trailing 252 sessions, and the
project's own snapshots only start the day it is installed; live providers cannot replay a past
chain. This asset fills that history from providers that sell past option data (the `history`
capability, `providers/past_chains.py`): for every symbol and session of its partition range that
has no 30-day ATM IV yet, the chain at the session's close, reduced to quotes, is solved with
the project's own solver and measured exactly as `iv_metrics` measures a chain (validation,
IV and greeks repaired by `ingest.validation.validate_chain`, then `volatility.metrics`).

What it writes: `atm_iv_30d` (and `iv_30d`, the same number), the underlying's close and the
provider; the term structure, skew and expected move of past sessions stay empty (Polygon's
history only covers the contracts the 30-day point reads, and nobody trades a past chain).
Then IV rank, percentile and `iv_history_days` are recomputed for the symbol from the first
filled session on, with `iv_metrics`' own ranking, so rows already stored after it (today's,
say) count the new history. A session that already has a 30-day ATM IV is never asked for
again nor overwritten: the project's own close snapshot is the better measurement, and a re-run
is free. A session a provider cannot answer is left empty and counted; a symbol fails only
when none of its sessions could be filled.

Backfill it over the last 252 sessions (one run, `BackfillPolicy.single_run`): in the UI, or
`dagster asset materialize -m volaris_assets.definitions --select iv_history_bootstrap
--partition-range FIRST...LAST`.
"""

import asyncio
from collections import Counter
from datetime import date

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
from volaris_assets.ingest.validation import Validated, validate_chain
from volaris_assets.prices.assets import session_range
from volaris_assets.providers.base import CHAIN_COLUMNS, ProviderError
from volaris_assets.providers.past_chains import HistoryChain, near_the_money
from volaris_assets.providers.resilience import FallbackChain
from volaris_assets.resources.market_data import HistoryDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.volatility.metrics import chain_metrics
from volaris_assets.volatility.ranking import write_ranked
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

# What a run writes for a past session (the rest of its row stays as it was, or empty).
FILLED_COLUMNS = ("symbol", "date", "atm_iv_30d", "iv_30d", "underlying_price", "provider")


class _History:
    """A `Fetched` for one symbol: its filled rows, the rows validation rejected and the
    sessions no provider could answer."""

    def __init__(
        self,
        frame: pd.DataFrame,
        provider: str,
        attempts: int,
        validated: Validated,
        unavailable: int,
    ) -> None:
        self.frame, self.provider, self.attempts = frame, provider, attempts
        self.validated, self.unavailable = validated, unavailable


def filled_days(warehouse: Warehouse, first: date, last: date) -> dict[str, set[date]]:
    """Per symbol, the sessions in [first, last] that already have a 30-day ATM IV."""
    table = tables.iv_metrics
    query = sa.select(table.c.symbol, table.c.date).where(
        table.c.date.between(first, last), table.c.atm_iv_30d.is_not(None)
    )
    out: dict[str, set[date]] = {}
    with warehouse.engine.connect() as conn:
        for symbol, day in conn.execute(query):
            out.setdefault(symbol, set()).add(day)
    return out


def measure(
    frame: pd.DataFrame, provider: str, session: calendar.Session
) -> tuple[dict, Validated]:
    """The history row of one past chain, and what validation made of the contracts measured
    (those `near_the_money`: the only ones the 30-day ATM IV reads)."""
    spot = float(frame["underlying_price"].median())
    near = near_the_money(
        frame[list(CHAIN_COLUMNS[:-1])].assign(provider=provider), spot, session.day
    )
    valid = validate_chain(near, session.close)
    metrics = chain_metrics(valid.frame, session.close)
    row = {
        "date": session.day,
        "atm_iv_30d": metrics.get("atm_iv_30d"),
        "iv_30d": metrics.get("atm_iv_30d"),
        "underlying_price": metrics.get("underlying_price", spot),
        "provider": provider,
    }
    return row, valid


async def symbol_history(
    chain: HistoryChain, symbol: str, sessions: list[calendar.Session]
) -> _History:
    """Fetch and measure `sessions` for `symbol`; failed sessions are counted, and the first
    failure is raised only when every session failed."""
    rows: list[dict] = []
    providers: set[str] = set()
    attempts, failures = 0, []
    rejected: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for session in sessions:
        try:
            fetched = await chain.session_close_chain(symbol, session.day)
        except ProviderError as error:
            attempts += getattr(error, "attempts", 1)
            failures.append(error)
            continue
        attempts += fetched.attempts
        providers.add(fetched.provider)
        row, valid = await asyncio.to_thread(measure, fetched.frame, fetched.provider, session)
        rows.append({"symbol": symbol, **row})
        rejected.update(valid.rejected)
        examples.update(valid.examples)
    if failures and not rows:
        raise failures[0]
    frame = pd.DataFrame(rows, columns=list(FILLED_COLUMNS))
    validated = Validated(frame=frame, rejected=rejected, examples=examples)
    return _History(
        frame, ",".join(sorted(providers)) or "stored", max(attempts, 1), validated, len(failures)
    )


@dg.asset(
    group_name="volatility",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    partitions_def=calendar.session_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool="history_providers",
    op_tags=queues.FETCH,
    description="Fills `iv_metrics` history (30-day ATM IV per symbol and past session, solved "
    "from closing option quotes with the project's solver) from VOLARIS_HISTORY_PROVIDERS, "
    "where none is stored, then re-ranks; backfill it over the last 252 sessions so IV rank "
    "and percentile have their full window on the first day.",
    metadata=asset_metadata("iv_metrics"),
)
def iv_history_bootstrap(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    history_data: HistoryDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    sessions = session_range(context)
    unavailable: Counter[str] = Counter()
    with warehouse.open() as wh:
        symbols = universe_symbols(wh, "in_sp500", config.symbols)
        done = filled_days(wh, sessions[0].day, sessions[-1].day)

        async def fetch(chain: FallbackChain, symbol: str) -> _History:
            todo = [s for s in sessions if s.day not in done.get(symbol, set())]
            history = await symbol_history(HistoryChain.of(chain), symbol, todo)
            unavailable[symbol] = history.unavailable
            return history

        def sink(conn: Connection, symbol: str, fetched: _History) -> Written:
            rows = write_ranked(conn, wh, symbol, fetched.frame)
            return Written(rows=rows, validated=fetched.validated)

        summary = run_fan_out(
            context,
            history_data,
            wh,
            symbols,
            fetch,
            sink,
            start_with=config.start_with_provider,
            priority="bulk",
        )
        metrics = tables.iv_metrics
        per_session = range_metadata(
            context, wh, SessionRows(metrics, metrics.c.date), symbols, sessions
        )
    return dg.MaterializeResult(
        metadata=summary.metadata(
            sessions=dg.MetadataValue.int(len(sessions)),
            sessions_unavailable=dg.MetadataValue.int(sum(unavailable.values())),
            **per_session,
        )
    )
