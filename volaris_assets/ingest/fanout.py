"""Fan a run out over its symbols: bounded concurrent fetches, one writer, one outcome per symbol.

Fetching is I/O bound and runs as `concurrency` asyncio workers; writing runs in one thread, one
symbol per transaction, so SQLite never sees two writers and a killed run loses only the symbol in
flight. A bounded queue between them caps memory at a few symbols' frames whatever the universe
size. Each symbol's outcome row is written in the same transaction as its data, so the outcome
table never claims rows that did not commit.

A lost connection (a restart, a failover) is ridden through: `Warehouse.run_transaction` runs the
symbol's whole transaction again on a fresh connection for up to its reconnect window, and past
the window the run stops at once with `WarehouseUnavailable` rather than spend the window again
on every symbol left.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from volaris_assets.ingest.validation import Validated
from volaris_assets.providers.base import RETRYABLE_CATEGORIES, ErrorCategory, ProviderError
from volaris_assets.redaction import redact
from volaris_assets.warehouse.errors import WarehouseUnavailable, classify, explain
from volaris_assets.warehouse.store import Warehouse, utc_now

# Consecutive warehouse failures after which the run stops: the database is down, and recording
# a thousand identical failures would bury the real error.
MAX_CONSECUTIVE_WRITE_FAILURES = 3
# Outcomes worth another run later: transient provider failures, and an open circuit (the
# provider was not even asked).
RETRYABLE_OUTCOMES: frozenset[str] = frozenset(
    c.value for c in (*RETRYABLE_CATEGORIES, ErrorCategory.CIRCUIT_OPEN)
)


class Fetched(Protocol):
    """What a fetch returns (the resilience layer's `Fetched`)."""

    frame: Any
    provider: str
    attempts: int


@dataclass(frozen=True)
class RunIdentity:
    run_id: str
    asset: str
    partition: str


@dataclass
class Written:
    """What a sink did with one symbol's data.

    `after_commit` runs once the symbol's transaction has committed: a sink may run more than
    once (a reconnect repeats the whole transaction), so anything it does besides writing (a
    running top-N) belongs there.
    """

    rows: int
    validated: Validated | None = None
    after_commit: Callable[[], None] | None = None


@dataclass
class SymbolOutcome:
    symbol: str
    status: str
    attempts: int
    duration_ms: int
    provider: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    rows_written: int = 0
    rows_rejected: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    @property
    def retryable(self) -> bool:
        return self.error_type in RETRYABLE_OUTCOMES


FetchFn = Callable[[str], Awaitable[Fetched]]
SinkFn = Callable[[Connection, str, Fetched], Written]
OutcomeFn = Callable[[SymbolOutcome], None]


async def fan_out(
    symbols: Iterable[str],
    fetch: FetchFn,
    sink: SinkFn,
    warehouse: Warehouse,
    identity: RunIdentity,
    *,
    concurrency: int = 16,
    queue_size: int = 8,
    on_outcome: OutcomeFn | None = None,
) -> list[SymbolOutcome]:
    """Fetch every symbol, write each as it arrives, and return one outcome per symbol.

    `on_outcome` sees each outcome as soon as it is recorded (progress reporting), on the
    event loop: it must not block.
    """
    with _long_lived_objects_frozen():
        return await _fan_out(
            list(dict.fromkeys(symbols)),
            fetch,
            sink,
            warehouse,
            identity,
            concurrency=concurrency,
            queue_size=queue_size,
            on_outcome=on_outcome,
        )


@contextlib.contextmanager
def _long_lived_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist before the fan-out out of the garbage collector's sight.

    A fan-out allocates a few million short-lived objects (decoded payloads, frames), so
    Python's full collections come often, and each one walked the whole long-lived heap of
    Dagster, pandas and SQLAlchemy: 100 ms pauses that held up the event loop (the requests
    behind them then left in a burst a provider's window can refuse) and a tenth of the CPU.
    `gc.freeze()` is the standard library's answer; `gc.unfreeze()` at the end lets anything
    that was frozen be collected again. A second fan-out running at the same time in the same
    process only loses the speed-up when the first one ends.
    """
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


async def _fan_out(
    pending: list[str],
    fetch: FetchFn,
    sink: SinkFn,
    warehouse: Warehouse,
    identity: RunIdentity,
    *,
    concurrency: int,
    queue_size: int,
    on_outcome: OutcomeFn | None,
) -> list[SymbolOutcome]:
    queue: asyncio.Queue[tuple[str, float, Fetched | BaseException] | None] = asyncio.Queue(
        maxsize=queue_size
    )
    source = iter(pending)

    async def worker() -> None:
        for symbol in source:  # a shared iterator: each symbol goes to exactly one worker
            started = time.perf_counter()
            try:
                result: Fetched | BaseException = await fetch(symbol)
            except Exception as error:  # noqa: BLE001 - every failure becomes an outcome row
                result = error
            await queue.put((symbol, started, result))

    async def drain() -> list[SymbolOutcome]:
        outcomes: list[SymbolOutcome] = []
        failures_in_a_row = 0
        while (item := await queue.get()) is not None:
            symbol, started, result = item
            outcome = await asyncio.to_thread(
                _settle, warehouse, identity, sink, symbol, started, result
            )
            failures_in_a_row = (
                failures_in_a_row + 1 if outcome.error_type == ErrorCategory.WRITE_FAILED else 0
            )
            if failures_in_a_row >= MAX_CONSECUTIVE_WRITE_FAILURES:
                raise WarehouseUnavailable(outcome.error_message)
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        return outcomes

    drainer = asyncio.create_task(drain())
    workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(pending))))]
    try:
        await _first_failure(workers, drainer)
        await queue.put(None)
        return await drainer
    finally:
        tasks = (*workers, drainer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _first_failure(workers: list[asyncio.Task], drainer: asyncio.Task) -> None:
    """Wait for the workers, but surface a writer failure at once instead of deadlocking."""
    if not workers:
        return
    waiting = asyncio.gather(*workers)
    done, _ = await asyncio.wait({waiting, drainer}, return_when=asyncio.FIRST_COMPLETED)
    if drainer in done and drainer.exception() is not None:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        drainer.result()  # raises the writer's error
    await waiting


def _settle(
    warehouse: Warehouse,
    identity: RunIdentity,
    sink: SinkFn,
    symbol: str,
    started: float,
    result: Fetched | BaseException,
) -> SymbolOutcome:
    """Write one symbol's data (or failure) and its outcome row in one transaction.

    A transaction that fails is an outcome too: `write_failed` (saying what to fix) when the
    warehouse is at fault, `bad_data` when it refused this symbol's rows. `WarehouseUnavailable`
    (the reconnect window ran out) ends the run.
    """

    def transaction(conn: Connection) -> tuple[SymbolOutcome, Written | None]:
        if isinstance(result, BaseException):
            outcome, written = _failure(symbol, started, result), None
        else:
            written = sink(conn, symbol, result)
            outcome = _success(symbol, started, result, written)
        _record(warehouse, conn, identity, outcome)
        return outcome, written

    try:
        outcome, written = warehouse.run_transaction(transaction)
    except WarehouseUnavailable:
        raise
    except Exception as error:  # noqa: BLE001 - a bad symbol must not end the run
        outcome = _write_failure(warehouse, symbol, started, result, error)
        _write_outcome(warehouse, identity, outcome)
        return outcome
    if written is not None and written.after_commit is not None:
        written.after_commit()
    return outcome


def _write_failure(
    warehouse: Warehouse,
    symbol: str,
    started: float,
    result: Fetched | BaseException,
    error: Exception,
) -> SymbolOutcome:
    """The outcome of a symbol whose transaction failed (with its fetch's attempts and
    provider)."""
    fetched = _failure(symbol, started, result) if isinstance(result, BaseException) else result
    if classify(error) is not None:
        category, message = ErrorCategory.WRITE_FAILED, explain(error, warehouse.url)
    else:
        category, message = ErrorCategory.BAD_DATA, f"{type(error).__name__}: {error}"
    return SymbolOutcome(
        symbol=symbol,
        status="failed",
        attempts=fetched.attempts,
        duration_ms=_elapsed_ms(started),
        provider=fetched.provider,
        error_type=category.value,
        error_message=redact(message)[:500],
    )


def _success(symbol: str, started: float, fetched: Fetched, written: Written) -> SymbolOutcome:
    validated = written.validated
    outcome = SymbolOutcome(
        symbol=symbol,
        status="ok",
        attempts=fetched.attempts,
        duration_ms=_elapsed_ms(started),
        provider=fetched.provider,
        rows_written=written.rows,
    )
    if validated is not None:
        outcome.rows_rejected = validated.rejected_count
        outcome.rejected = validated.rejected
        outcome.examples = validated.examples
        if written.rows == 0 and validated.rejected_count:
            outcome.status = "failed"
            outcome.error_type = ErrorCategory.BAD_DATA.value
            outcome.error_message = "every row rejected: " + ", ".join(sorted(validated.rejected))
    return outcome


def _failure(symbol: str, started: float, error: BaseException) -> SymbolOutcome:
    if isinstance(error, ProviderError):
        category, provider = error.category.value, error.provider or None
    elif isinstance(error, (asyncio.TimeoutError, TimeoutError)):
        category, provider = ErrorCategory.TIMEOUT.value, None
    else:
        category, provider = ErrorCategory.UNKNOWN.value, None
    return SymbolOutcome(
        symbol=symbol,
        status="failed",
        attempts=int(getattr(error, "attempts", 1)),
        duration_ms=_elapsed_ms(started),
        provider=provider,
        error_type=category,
        error_message=redact(str(error) or type(error).__name__)[:500],
    )


def _write_outcome(warehouse: Warehouse, identity: RunIdentity, outcome: SymbolOutcome) -> None:
    """Record a failed symbol's outcome on its own; the run goes on if even that fails
    (the outcome still counts in the run's summary), unless the warehouse is down."""
    try:
        warehouse.run_transaction(lambda conn: _record(warehouse, conn, identity, outcome))
    except WarehouseUnavailable:
        raise
    except Exception:  # noqa: BLE001 - the write failure is already the outcome
        pass


def _record(
    warehouse: Warehouse, conn: Connection, identity: RunIdentity, outcome: SymbolOutcome
) -> None:
    now = utc_now()
    warehouse.upsert(
        conn,
        "sync_stock_results",
        [
            {
                "run_id": identity.run_id,
                "asset": identity.asset,
                "partition": identity.partition,
                "symbol": outcome.symbol,
                "status": outcome.status,
                "error_type": outcome.error_type,
                "error_message": outcome.error_message,
                "attempts": outcome.attempts,
                "provider": outcome.provider,
                "rows_written": outcome.rows_written,
                "rows_rejected": outcome.rows_rejected,
                "duration_ms": outcome.duration_ms,
                "recorded_at": now,
            }
        ],
    )
    if outcome.rejected:
        warehouse.upsert(
            conn,
            "row_rejections",
            [
                {
                    "run_id": identity.run_id,
                    "asset": identity.asset,
                    "partition": identity.partition,
                    "symbol": outcome.symbol,
                    "reason": reason,
                    "count": count,
                    "example": redact(outcome.examples.get(reason, ""))[:200],
                    "recorded_at": now,
                }
                for reason, count in outcome.rejected.items()
            ],
        )


def _elapsed_ms(started: float) -> int:
    return int((time.perf_counter() - started) * 1000)
