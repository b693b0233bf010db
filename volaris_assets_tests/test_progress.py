"""Progress an operator can watch: the running line, its figures in the metadata, the slow-budget
warning at the start."""

import asyncio
import time
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd
import pytest

from volaris_assets.ingest.fanout import RunIdentity, SymbolOutcome, Written, fan_out
from volaris_assets.ingest.loop_lag import LAG_WARNING_S, LoopLag, lag_warning
from volaris_assets.ingest.progress import (
    Progress,
    budget_time_s,
    duration_text,
    rate_text,
    reported,
    slow_run_warning,
)
from volaris_assets.prices.assets import daily_bars
from volaris_assets.providers.rate_limit import DEFAULT_RATE_LIMITS, RateLimit
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import SESSION, metadata, resources


@dataclass
class Got:
    frame: pd.DataFrame = field(default_factory=pd.DataFrame)
    provider: str = "simulated"
    attempts: int = 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def ok(symbol: str, provider: str = "schwab", attempts: int = 1) -> SymbolOutcome:
    return SymbolOutcome(symbol, "ok", attempts, 10, provider=provider, rows_written=1)


def failed(symbol: str, category: str, provider: str | None, attempts: int) -> SymbolOutcome:
    return SymbolOutcome(symbol, "failed", attempts, 10, provider=provider, error_type=category)


def test_line_counts_rate_eta_failures_and_requests():
    clock = FakeClock()
    progress = Progress(503, clock)
    for i in range(118):
        progress.record(ok(f"S{i}"))
    progress.record(failed("T1", "timeout", "schwab", 6))
    progress.record(failed("T2", "timeout", "schwab", 6))
    clock.now += 10.1
    assert progress.line() == (
        "120/503 symbols, 11.9/s, ETA 32 s, failed {'timeout': 2}, requests {'schwab': 130}"
    )


def test_line_before_anything_finished_and_at_the_end():
    clock = FakeClock()
    progress = Progress(3, clock)
    clock.now += 12
    assert progress.line() == "0/3 symbols, 0/s, ETA unknown, failed {}, requests {}"
    progress.record(ok("A", "polygon", attempts=2))
    progress.record(failed("B", "circuit_open", "schwab", 0))  # no request sent
    progress.record(failed("C", "unknown", None, 1))
    clock.now += 8
    assert progress.line() == (
        "3/3 symbols, 9/min, in 20 s, failed {'circuit_open': 1, 'unknown': 1}, "
        "requests {'polygon': 2, 'unknown': 1}"
    )


def test_texts_read_like_an_estimate():
    assert [duration_text(s) for s in (0.04, 32.2, 309, 9000, 37_000)] == [
        "0.0 s",
        "32 s",
        "5 min",
        "2.5 h",
        "10 h",
    ]
    assert rate_text(50 / 3600, "requests") == "50 requests/h"
    assert rate_text(2500.0) == "2500/s"


def test_budget_time_spends_the_burst_at_once_then_paces():
    assert budget_time_s(2, RateLimit(per_second=1 / 120, burst=2)) == 0.0
    assert budget_time_s(3, RateLimit(per_second=0.97, burst=1)) == pytest.approx(2 / 0.97**2)
    assert budget_time_s(10_000, RateLimit.unlimited()) == 0.0


def test_slow_budget_warning_only_when_the_budget_makes_the_run_long():
    warning = slow_run_warning(
        "daily_bars 2026-11-24", 503, "tiingo", DEFAULT_RATE_LIMITS["tiingo"]
    )
    assert warning == (
        "daily_bars 2026-11-24: 503 symbols at tiingo's budget of 50 requests/h: about 10 h; "
        "set VOLARIS_RATE_LIMITS=tiingo=<requests>/<seconds> for your plan or put a faster "
        "provider first"
    )
    assert slow_run_warning("x", 300, "schwab", DEFAULT_RATE_LIMITS["schwab"]) is None  # 2.6 min
    assert slow_run_warning("x", 503, "simulated", DEFAULT_RATE_LIMITS["simulated"]) is None


def test_reported_logs_on_a_timer_until_the_block_ends():
    lines: list[str] = []

    async def logged_within_block() -> int:
        progress = Progress(2)
        async with reported(progress, lines.append, every_s=0.01):
            while not lines:
                await asyncio.sleep(0.005)
            progress.record(ok("A"))
            before = len(lines)
            while len(lines) == before:
                await asyncio.sleep(0.005)
        within = len(lines)
        await asyncio.sleep(0.05)
        return within

    assert asyncio.run(logged_within_block()) == len(lines)  # nothing after the block
    assert lines[0].startswith("0/2 symbols") and lines[-1].startswith("1/2 symbols")


def test_fan_out_hands_every_outcome_to_on_outcome(sqlite_warehouse_url):
    warehouse = Warehouse(sqlite_warehouse_url)
    warehouse.create_tables()
    seen: list[SymbolOutcome] = []

    async def fetch(symbol: str) -> Got:
        if symbol == "BAD":
            raise TimeoutError
        return Got()

    identity = RunIdentity(run_id="run-1", asset="daily_bars", partition=SESSION)
    outcomes = asyncio.run(
        fan_out(
            ["AAPL", "BAD", "MSFT"],
            fetch,
            lambda conn, symbol, fetched: Written(rows=0),
            warehouse,
            identity,
            on_outcome=seen.append,
        )
    )
    assert seen == outcomes and len(seen) == 3
    warehouse.dispose()


def test_loop_lag_is_the_longest_the_loop_was_held_up():
    lag = LoopLag(every_s=0.01)

    async def hold_up() -> None:
        async with lag.watching():
            await asyncio.sleep(0.05)
            time.sleep(0.3)  # CPU-bound work on the loop, as a whole batch parsed in one go
            await asyncio.sleep(0.05)

    asyncio.run(hold_up())
    assert 0.28 <= lag.max_s < 5  # the upper bound only guards against a broken clock


def test_a_loop_held_up_past_a_second_is_said_and_less_is_not():
    assert lag_warning("chains", LAG_WARNING_S - 0.01) is None
    assert lag_warning("chains", 2.34) == (
        "chains: this process held up its own event loop for up to 2.3 s (a loaded machine, "
        "or CPU-bound work on the loop): timeouts in this run may be this process's, not the "
        "provider's"
    )


def run_logs(
    instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult
) -> list[tuple[int, str]]:
    """(level, message) of the run's own log lines (`context.log`), in order."""
    return [(e.level, e.user_message) for e in instance.all_logs(result.run_id) if e.user_message]


def test_materialization_logs_its_final_progress_and_stores_its_figures(
    sqlite_warehouse_url, small_universe, instance, monkeypatch
):
    # The memory warning depends on how far earlier tests grew this process (test_memory's own).
    monkeypatch.setenv("VOLARIS_MEMORY_WARN_MB", "100000")
    res = resources(sqlite_warehouse_url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    result = dg.materialize([daily_bars], partition_key=SESSION, resources=res, instance=instance)
    assert result.success
    logs = run_logs(instance, result)
    final = [m for _, m in logs if m.startswith(f"daily_bars {SESSION}: ")]
    assert len(final) == 1  # a run this short logs no line on the timer
    # The simulated market has no budget to warn of (a loaded host may hold up the loop).
    assert not [m for level, m in logs if level >= 30 and "event loop" not in m]
    assert final[0].startswith(f"daily_bars {SESSION}: 6/6 symbols, ")
    assert ", in " in final[0] and "failed {}, requests {'simulated': 6}; " in final[0]
    assert final[0].endswith("6 rows written, 0 rejected")
    meta = metadata(result, "daily_bars")
    assert meta["requests_by_provider"] == {"simulated": 6}
    assert meta["symbols_per_s"] > 0
    assert meta["loop_lag_max_s"] >= 0
    assert f"{meta['symbols_per_s']:.3g}/s" in final[0]


def test_a_run_the_budget_makes_long_says_so_when_it_starts(
    sqlite_warehouse_url, small_universe, instance
):
    """Tiingo at one request a minute needs 5 minutes for the universe's 6 symbols; its server
    refuses connections and its circuit opens at the first failure, so the simulated market
    answers at once and the run still finishes in a moment."""
    res = resources(sqlite_warehouse_url)
    res["daily_data"] = MarketDataResource(
        capability="daily",
        providers="tiingo,simulated",
        tiingo_api_key="test-key",
        tiingo_api_base="http://127.0.0.1:9",  # nothing listens: connection refused
        rate_limits="tiingo=1/60:1",
        concurrency=1,
        retry_attempts=1,
        breaker_failures=1,
        breaker_cooldown_s=600,
    )
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    result = dg.materialize([daily_bars], partition_key=SESSION, resources=res, instance=instance)
    assert result.success
    logs = run_logs(instance, result)
    warnings = [m for level, m in logs if level == 30 and "budget" in m]
    assert warnings == [
        f"daily_bars {SESSION}: 6 symbols at tiingo's budget of 1 requests/min: about 5 min; "
        "set VOLARIS_RATE_LIMITS=tiingo=<requests>/<seconds> for your plan or put a faster "
        "provider first"
    ]
    fetched = next(i for i, (_, m) in enumerate(logs) if m.startswith(f"daily_bars {SESSION}: 6/6"))
    assert logs.index((30, warnings[0])) < fetched
    # The refused request counts under the provider that answered in the end (see RunSummary).
    assert metadata(result, "daily_bars")["requests_by_provider"] == {"simulated": 7}


def test_a_run_warns_when_its_shared_budget_was_last_spent_at_another_pace(
    sqlite_warehouse_url, small_universe, instance
):
    """Two deployments of one Tiingo account with different limits: the second run's log
    names the pace the other one spent the shared budget at, before it fetches anything; a
    run after it at the same pace has nothing to say."""

    def daily_run(rate_limits: str) -> list[tuple[int, str]]:
        """The run's lines about the shared budget; its budget table says Tiingo's circuit
        opened at the refused request."""
        res = resources(sqlite_warehouse_url)
        res["daily_data"] = MarketDataResource(
            capability="daily",
            providers="tiingo,simulated",
            tiingo_api_key="test-key",
            tiingo_api_base="http://127.0.0.1:9",  # refused: one request, then simulated
            rate_limits=rate_limits,
            concurrency=1,
            retry_attempts=1,
            breaker_failures=1,
            breaker_cooldown_s=600,
        )
        run = dg.materialize([daily_bars], partition_key=SESSION, resources=res, instance=instance)
        assert run.success
        [budget] = metadata(run, "daily_bars")["provider_budget"]
        assert (budget["provider"], budget["breaker"]) == ("tiingo", "open")
        return [(level, m) for level, m in run_logs(instance, run) if "shared budget" in m]

    dg.materialize(
        [sp500_constituents], resources=resources(sqlite_warehouse_url), instance=instance
    )
    assert daily_run("tiingo=60/60:1") == []
    assert daily_run("tiingo=30/60:1") == [
        (
            30,  # the paces are the limits less the 3% headroom every budget keeps
            "tiingo's shared budget was last spent at 58.2/min by another process, this run "
            "paces it at 29.1/min: give every process that shares the account the same "
            "VOLARIS_RATE_LIMITS, VOLARIS_BUDGET_HOSTS and VOLARIS_BUDGET_PROCESSES",
        )
    ]
    assert daily_run("tiingo=30/60:1") == []
