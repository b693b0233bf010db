"""The fan-out: every symbol ends as data or a categorised outcome row, never silence."""

import asyncio
import gc
from dataclasses import dataclass

import pandas as pd
import pytest

from volaris_assets.ingest.fanout import RunIdentity, WarehouseUnavailable, Written, fan_out
from volaris_assets.providers.base import ErrorCategory, ProviderError
from volaris_assets.warehouse.store import Warehouse

IDENTITY = RunIdentity(run_id="run-1", asset="option_chains", partition="2026-11-24-10:00")


@dataclass
class Got:
    frame: pd.DataFrame
    provider: str = "simulated"
    attempts: int = 1


async def fetch(symbol: str) -> Got:
    await asyncio.sleep(0.001)
    if symbol.startswith("RL"):
        raise ProviderError(ErrorCategory.RATE_LIMITED, "429 from /chains", provider="schwab")
    if symbol == "BOOM":
        raise RuntimeError("token=abcdef123456 leaked into a message")
    return Got(pd.DataFrame({"x": [1, 2, 3]}))


def sink(conn, symbol, fetched):
    if symbol == "BAD":
        raise ValueError("unparseable row")
    return Written(rows=len(fetched.frame))


def test_outcomes_for_every_symbol(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    symbols = ["AAPL", "RL1", "RL2", "BOOM", "BAD", "MSFT", "AAPL"]
    outcomes = asyncio.run(fan_out(symbols, fetch, sink, warehouse, IDENTITY, concurrency=3))
    by_symbol = {o.symbol: o for o in outcomes}
    assert set(by_symbol) == {"AAPL", "RL1", "RL2", "BOOM", "BAD", "MSFT"}  # duplicates once
    assert by_symbol["AAPL"].status == "ok" and by_symbol["AAPL"].rows_written == 3
    assert by_symbol["RL1"].error_type == "rate_limited" and by_symbol["RL1"].retryable
    assert by_symbol["BOOM"].error_type == "unknown"
    assert "abcdef123456" not in by_symbol["BOOM"].error_message
    assert by_symbol["BAD"].error_type == "bad_data"
    stored = warehouse.read_frame("SELECT symbol, status, error_type FROM sync_stock_results")
    assert len(stored) == 6 and set(stored["symbol"]) == set(by_symbol)
    warehouse.dispose()


def test_dead_warehouse_stops_the_run(tmp_path):
    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}")
    warehouse.create_tables()
    calls: list[str] = []

    def broken_sink(conn, symbol, fetched):
        from sqlalchemy.exc import OperationalError

        calls.append(symbol)
        raise OperationalError("INSERT", {}, Exception("database is gone"))

    with pytest.raises(WarehouseUnavailable) as caught:
        asyncio.run(fan_out([f"S{i}" for i in range(20)], fetch, broken_sink, warehouse, IDENTITY))
    assert len(calls) == 3  # not a lost connection: never retried, and the third one stops it
    assert str(caught.value).startswith("Warehouse unavailable (database error): the SQLite file")
    assert "database is gone" in str(caught.value)


def test_an_over_long_contract_is_a_counted_rejection_on_both_dialects(warehouse_url):
    """PostgreSQL refuses a key longer than its column (SQLite would store it): validation
    rejects that one contract, and the symbol's other rows and outcome are written."""
    from volaris_assets.options.assets import write_chain
    from volaris_assets.providers.simulated import SimulatedMarket
    from volaris_assets_tests.test_validation import AS_OF, absurd_strike_contract

    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    chain = SimulatedMarket().option_chain("AAPL", AS_OF)
    frame = pd.concat([chain, absurd_strike_contract(chain)], ignore_index=True)

    async def fetch_chain(symbol: str) -> Got:
        return Got(frame)

    def sink_chain(conn, symbol, fetched):
        return write_chain(conn, warehouse, symbol, fetched, AS_OF)

    [outcome] = asyncio.run(fan_out(["AAPL"], fetch_chain, sink_chain, warehouse, IDENTITY))
    assert (outcome.status, outcome.rows_written, outcome.rows_rejected) == ("ok", len(chain), 1)
    rejections = warehouse.read_frame("SELECT symbol, reason, count, example FROM row_rejections")
    assert rejections.to_dict("records") == [
        {
            "symbol": "AAPL",
            "reason": "too_long",
            "count": 1,
            "example": frame["occ_symbol"].iloc[-1],
        }
    ]
    stored = warehouse.read_frame("SELECT count(*) AS n FROM option_snapshots")
    assert stored["n"][0] == len(chain)
    warehouse.dispose()


def test_a_sink_runs_again_after_a_reconnect_but_its_after_commit_once(tmp_path):
    """A lost connection repeats the whole transaction, sink included; what the sink does
    besides writing waits for the commit."""
    from sqlalchemy.exc import OperationalError

    warehouse = Warehouse(f"sqlite:///{tmp_path / 'w.db'}", reconnect_window_s=5)
    warehouse.create_tables()
    attempts: list[str] = []
    committed: list[str] = []

    def flaky_sink(conn, symbol, fetched):
        attempts.append(symbol)
        if len(attempts) == 1:
            error = OperationalError("COPY", {}, Exception("server closed the connection"))
            error.connection_invalidated = True
            raise error
        return Written(rows=3, after_commit=lambda: committed.append(symbol))

    [outcome] = asyncio.run(fan_out(["AAPL"], fetch, flaky_sink, warehouse, IDENTITY))
    assert outcome.status == "ok" and attempts == ["AAPL", "AAPL"] and committed == ["AAPL"]
    warehouse.dispose()


def test_the_heap_from_before_the_fan_out_is_frozen_only_while_it_runs(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    before = gc.get_freeze_count()
    during: list[int] = []

    async def watched(symbol: str) -> Got:
        during.append(gc.get_freeze_count())
        return await fetch(symbol)

    asyncio.run(fan_out(["AAPL", "BAD"], watched, sink, warehouse, IDENTITY, concurrency=2))
    assert min(during) > before  # Dagster, pandas, SQLAlchemy: out of the collector's sight
    assert gc.get_freeze_count() == before  # and back in it afterwards, even after a bad sink
    warehouse.dispose()
