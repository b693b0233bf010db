"""Pooled providers: symbols spread over every provider by budget, falling back as a chain does.

The unit tests drive `PooledChain` over in-process scripted sources (test_resilience's harness:
unlimited budgets, a hand-moved clock); gated sources hold symbols in hand so that where each
one went can be counted. One test paces real token buckets in real time, and the last runs
three real provider clients against the sandbox inside a real materialization.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import dagster as dg
import pytest

from volaris_assets.options.assets import option_chains
from volaris_assets.providers.base import ErrorCategory, ProviderError
from volaris_assets.providers.pool import PooledChain
from volaris_assets.providers.resilience import (
    ChainExhausted,
    CircuitState,
    FallbackChain,
    Fetched,
    RateLimit,
    ResilienceRegistry,
)
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources, sandbox_market
from volaris_assets_tests.test_resilience import AS_OF, Harness, ScriptedSource

pytestmark = pytest.mark.timeout(60)

NAMES = ("schwab", "polygon", "yahoo")
# The brief's example budgets, in requests/s: 2 + 5 + 1 = 8.
RATES = {"schwab": RateLimit(2, 1), "polygon": RateLimit(5, 1), "yahoo": RateLimit(1, 1)}
CONCURRENCY = 16


def _error(category: ErrorCategory) -> ProviderError:
    return ProviderError(category, f"scripted {category.value}")


def _pool(harness: Harness, sources: list[ScriptedSource]) -> PooledChain:
    return PooledChain.from_chain(harness.chain(*sources), RATES)


def _gated(gate: asyncio.Event) -> list[ScriptedSource]:
    return [ScriptedSource(name, gate=gate) for name in NAMES]


def _served(sources: list[ScriptedSource]) -> dict[str, int]:
    return {source.name: len(source.calls) for source in sources}


async def _in_hand(pool: PooledChain, symbols: list[str]) -> list[asyncio.Task[Fetched]]:
    """Start `symbols` on `pool` and let each reach its (gated) source."""
    tasks = [asyncio.create_task(pool.option_chain(symbol, AS_OF)) for symbol in symbols]
    for _ in range(5):
        await asyncio.sleep(0)
    return tasks


def test_symbols_in_hand_are_spread_in_proportion_to_the_budgets() -> None:
    gate = asyncio.Event()
    sources = _gated(gate)
    pool = _pool(Harness(), sources)

    async def main() -> list[Fetched]:
        tasks = await _in_hand(pool, [f"S{i}" for i in range(CONCURRENCY)])
        assert _served(sources) == {"schwab": 4, "polygon": 10, "yahoo": 2}
        gate.set()
        return await asyncio.gather(*tasks)

    fetched = asyncio.run(main())
    assert Counter(f.provider for f in fetched) == {"schwab": 4, "polygon": 10, "yahoo": 2}


def test_every_row_keeps_the_provider_that_answered_it() -> None:
    gate = asyncio.Event()
    sources = _gated(gate)
    pool = _pool(Harness(), sources)
    symbols = [f"S{i}" for i in range(8)]

    async def main() -> list[Fetched]:
        tasks = await _in_hand(pool, symbols)
        gate.set()
        return await asyncio.gather(*tasks)

    answers = asyncio.run(main())
    asked = {call[1]: source.name for source in sources for call in source.calls}
    for symbol, fetched in zip(symbols, answers, strict=True):
        assert fetched.provider == asked[symbol]
        assert fetched.frame["provider"].tolist() == [fetched.provider]
        assert fetched.attempts == 1 and fetched.failures == ()


def test_a_provider_that_stops_answering_keeps_only_its_share_in_hand() -> None:
    """Routing on what is in hand, not on fixed shares: once Yahoo stops answering, it keeps
    the 2 symbols it holds and the rest of 100 go to the others (fixed 2:5:1 shares would go
    on handing it one symbol in eight, until its queue held most of the 16 slots)."""
    others, yahoo = asyncio.Event(), asyncio.Event()
    sources = [ScriptedSource(n, gate=others) for n in NAMES[:2]] + [ScriptedSource("yahoo")]
    sources[2].gate = yahoo
    pool = _pool(Harness(), sources)

    async def main() -> list[Fetched]:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(symbol: str) -> Fetched:
            async with slots:
                return await pool.option_chain(symbol, AS_OF)

        tasks = [asyncio.create_task(one(f"S{i}")) for i in range(100)]
        for _ in range(5):
            await asyncio.sleep(0)
        assert _served(sources) == {"schwab": 4, "polygon": 10, "yahoo": 2}
        others.set()
        while sum(task.done() for task in tasks) < 98:
            await asyncio.sleep(0)
        assert _served(sources)["yahoo"] == 2
        yahoo.set()
        return await asyncio.gather(*tasks)

    fetched = asyncio.run(main())
    assert Counter(f.provider for f in fetched)["yahoo"] == 2
    assert sum(_served(sources).values()) == 100


def test_pacing_keeps_every_provider_busy_in_proportion() -> None:
    """Real token buckets at 20, 50 and 10 requests/s, 16 symbols at once: the pool runs at
    the three budgets together (a fallback chain would run at the primary's 20/s)."""
    registry = ResilienceRegistry({n: RateLimit(10 * r.per_second, 1) for n, r in RATES.items()})
    sources = [ScriptedSource(name) for name in NAMES]
    pool = PooledChain.from_chain(registry.chain(sources), registry.rate_limits)
    symbols = [f"S{i}" for i in range(240)]

    async def main() -> list[Fetched]:
        slots = asyncio.Semaphore(CONCURRENCY)

        async def one(symbol: str) -> Fetched:
            async with slots:
                return await pool.option_chain(symbol, AS_OF)

        return await asyncio.gather(*(one(symbol) for symbol in symbols))

    started = time.perf_counter()
    fetched = asyncio.run(main())
    elapsed = time.perf_counter() - started
    served = Counter(f.provider for f in fetched)
    for name, share in {"schwab": 2 / 8, "polygon": 5 / 8, "yahoo": 1 / 8}.items():
        assert served[name] == pytest.approx(share * len(symbols), rel=0.15), served
    ceiling_s = len(symbols) / (80 * 0.97)  # the buckets pace at PACING_HEADROOM
    assert ceiling_s * 0.9 < elapsed < ceiling_s * 1.5


def test_a_symbol_failing_where_it_was_assigned_falls_back_through_the_others() -> None:
    # The first symbol goes to Polygon (largest budget); from there the order wraps around.
    polygon = ScriptedSource("polygon", [_error(ErrorCategory.NOT_FOUND)])
    yahoo = ScriptedSource("yahoo", [_error(ErrorCategory.AUTH)])
    schwab = ScriptedSource("schwab")
    fetched = asyncio.run(_pool(Harness(), [schwab, polygon, yahoo]).option_chain("KO", AS_OF))
    assert fetched.provider == "schwab"
    assert fetched.failures == (
        ("polygon", ErrorCategory.NOT_FOUND),
        ("yahoo", ErrorCategory.AUTH),
    )
    assert fetched.attempts == 3


def test_a_symbol_every_provider_fails_is_exhausted_with_every_answer() -> None:
    sources = [ScriptedSource(n, [_error(ErrorCategory.NOT_FOUND)]) for n in NAMES]
    with pytest.raises(ChainExhausted) as caught:
        asyncio.run(_pool(Harness(), sources).bars("KO", "1d", AS_OF, AS_OF))
    assert caught.value.category is ErrorCategory.NOT_FOUND
    assert caught.value.failures == tuple(
        (name, ErrorCategory.NOT_FOUND) for name in ("polygon", "yahoo", "schwab")
    )
    assert all(source.calls[0][0] == "bars" for source in sources)


def test_an_open_circuit_takes_no_new_symbols_until_its_probe_closes_it() -> None:
    harness = Harness()
    harness.trip("polygon")
    gate = asyncio.Event()
    sources = _gated(gate)
    pool = _pool(harness, sources)

    async def main() -> None:
        tasks = await _in_hand(pool, [f"S{i}" for i in range(CONCURRENCY)])
        assert _served(sources) == {"schwab": 11, "polygon": 0, "yahoo": 5}
        harness.now = 60.0  # the cool-down is over: half-open
        tasks += await _in_hand(pool, ["PROBE", "NEXT"])
        assert [call[1] for call in sources[1].calls] == ["PROBE"]
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert harness.registry.breaker("polygon").state is CircuitState.CLOSED
    assert asyncio.run(pool.option_chain("AFTER", AS_OF)).provider == "polygon"


def test_with_every_circuit_open_a_symbol_fails_as_circuit_open_without_a_request() -> None:
    harness = Harness()
    for name in NAMES:
        harness.trip(name)
    sources = [ScriptedSource(name) for name in NAMES]
    with pytest.raises(ChainExhausted) as caught:
        asyncio.run(_pool(harness, sources).option_chain("KO", AS_OF))
    assert caught.value.category is ErrorCategory.CIRCUIT_OPEN
    assert caught.value.attempts == 0
    assert _served(sources) == dict.fromkeys(NAMES, 0)


def test_rotated_reorders_ties_and_fallbacks_and_shares_sources_and_load() -> None:
    gate = asyncio.Event()
    sources = _gated(gate)
    pool = _pool(Harness(), sources)
    rotated = pool.rotated("yahoo")
    assert isinstance(rotated, PooledChain)
    assert rotated.providers == ("yahoo", "schwab", "polygon")
    assert pool.rotated(None).providers == NAMES
    with pytest.raises(ValueError, match="tiingo"):
        pool.rotated("tiingo")

    async def main() -> None:
        # Polygon 4 and Schwab 1 in hand: all three at (in hand + 1) / rate = 1, a tie that
        # the rotated pool, seeing the same load, gives to its first provider.
        tasks = await _in_hand(pool, [f"S{i}" for i in range(5)])
        tasks += await _in_hand(rotated, ["R"])
        assert [call[1] for call in sources[2].calls] == ["R"]
        gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(main())


def test_a_pool_needs_a_positive_rate_for_every_provider() -> None:
    chain = Harness().chain(*(ScriptedSource(name) for name in NAMES))
    with pytest.raises(ValueError, match="yahoo"):
        PooledChain.from_chain(chain, {**RATES, "yahoo": RateLimit(0, 1)})
    with pytest.raises(KeyError, match="yahoo"):
        PooledChain.from_chain(chain, {"schwab": RATES["schwab"], "polygon": RATES["polygon"]})


@pytest.mark.parametrize(("mode", "kind"), [("fallback", FallbackChain), ("pool", PooledChain)])
def test_the_resource_opens_the_configured_mode(mode: str, kind: type) -> None:
    market = MarketDataResource(capability="chain", mode=mode)

    async def opened() -> object:
        async with market.open(start_with="simulated") as chain:
            return chain

    assert type(asyncio.run(opened())) is kind


# --- three real clients against the sandbox ----------------------------------------------------

# The window before the sandbox's clock, 11:00 ET (sandbox_fixtures.SANDBOX_AS_OF): a live chain
# stands for a window up to 45 trading minutes before its provider's clock.
SNAPSHOT = "2026-03-11-10:45"
UNIVERSE = "AAPL,MSFT,NVDA,BRK.B,KO,XOM,JPM,JNJ,PG,V,HD,UNH"


def test_a_pooled_option_chains_run_spreads_real_clients_and_labels_each_symbol(
    clean_sandbox, sqlite_warehouse_url, instance, monkeypatch
) -> None:
    monkeypatch.setenv("VOLARIS_UNIVERSE", UNIVERSE)
    market = sandbox_market(
        clean_sandbox.settings(),
        ",".join(NAMES),
        mode="pool",
        rate_limits="schwab=20/1,polygon=50/1,yahoo=10/1",
        # "No faults, so no fallbacks" below: a request timing out on a slow, loaded host
        # (5 s did, on a 2-core host half as fast as the Xeons) would be a fallback too.
        request_timeout_s=20.0,
    )
    res = resources(sqlite_warehouse_url, **market)
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    run = dg.materialize([option_chains], partition_key=SNAPSHOT, resources=res, instance=instance)
    assert run.success

    warehouse = Warehouse(sqlite_warehouse_url)
    outcomes = warehouse.read_frame(
        "SELECT symbol, status, provider FROM sync_stock_results WHERE asset = 'option_chains'"
    ).set_index("symbol")
    assert sorted(outcomes.index) == sorted(UNIVERSE.split(","))
    assert (outcomes["status"] == "ok").all()
    assert set(outcomes["provider"]) == set(NAMES)
    rows = warehouse.read_frame("SELECT DISTINCT symbol, provider FROM option_snapshots")
    assert (
        rows.set_index("symbol")["provider"].sort_index().equals(outcomes["provider"].sort_index())
    )
    # No faults, so no fallbacks: each symbol was asked of exactly the provider it names
    # (Schwab's symbol is in its query string, and a slow answer may be hedged: counted only).
    stats, labelled = clean_sandbox.stats, outcomes["provider"]
    assert stats.count("schwab", "/marketdata/v1/chains") >= (labelled == "schwab").sum()
    for symbol, provider in labelled.items():
        polygon = stats.count("polygon", f"/v3/snapshot/options/{symbol}")
        yahoo = stats.count("yahoo", f"/v7/finance/options/{symbol.replace('.', '-')}")
        assert (polygon > 0, yahoo > 0) == (provider == "polygon", provider == "yahoo"), symbol
