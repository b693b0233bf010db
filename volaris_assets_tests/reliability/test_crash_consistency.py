"""A run SIGKILLed in the middle of writing, then re-run, leaves the warehouse exactly as a clean
run does: no duplicates, no half-written symbol, nothing lost that had committed.

Real runs (`dagster asset materialize` in their own process groups) fetch chains from Schwab on
the sandbox; Schwab's client-side budget (2 requests/s) makes a 12-symbol run last ~6 s, long
enough to kill it with some symbols written and others not. The re-run and a clean run of the
same partition into a second database then run side by side, and the two warehouses are
compared row for row.
"""

from __future__ import annotations

import sqlalchemy as sa

from volaris_assets.universe.constituents import SP500, index_members
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import (
    CHAIN_TABLES,
    MATERIALIZE_CHAINS,
    materialize_universe,
    subprocess_env,
)
from volaris_assets_tests.reliability.processes import (
    kill_group,
    running,
    start_group,
    wait_for,
)
from volaris_assets_tests.reliability.warehouse_state import (
    assert_same_state,
    chain_counts,
    partial_symbols,
    warehouse_state,
)

SYMBOL_COUNT = 12


def outcomes_so_far(url: str) -> int:
    warehouse = Warehouse(url)
    try:
        with warehouse.engine.connect() as conn:
            present = sa.inspect(conn).has_table("sync_stock_results")
            if not present:
                return 0
            return conn.execute(sa.text("SELECT count(*) FROM sync_stock_results")).scalar_one()
    finally:
        warehouse.dispose()


def whole_symbols(url: str) -> set[str]:
    """After the crash: a symbol has data if and only if its outcome row committed, and then
    all of it (the outcome row is written in the data's transaction); returns those symbols."""
    assert partial_symbols(url) == {}
    counts = chain_counts(url)
    return set(counts.index[counts["recorded"] > 0])


def test_killed_run_rerun_equals_clean_run(reliability_sandbox, tmp_path, instance):
    symbols = [m.symbol for m in index_members((SP500,)).members][:SYMBOL_COUNT]
    reliability_sandbox.reset({"latency_ms": "10-40"})

    def env(url: str, name: str) -> dict[str, str]:
        """Each warehouse has the Dagster instance of its own runs (killed run included)."""
        home = tmp_path / name
        home.mkdir(exist_ok=True)
        return subprocess_env(url, str(home), reliability_sandbox)

    server = postgres_url()
    with scratch_database(server, "crash") as crashed, scratch_database(server, "clean") as clean:
        for url in (crashed, clean):
            assert materialize_universe(url, symbols, instance).success
        victim = start_group(MATERIALIZE_CHAINS, env(crashed, "crashed"), tmp_path / "crashed.log")
        try:
            wait_for(lambda: outcomes_so_far(crashed) >= 3, 90, "3 symbols written", 0.05)
        finally:
            kill_group(victim)
        assert victim.returncode == -9
        survivors = whole_symbols(crashed)
        assert 0 < len(survivors) < SYMBOL_COUNT, "the kill did not land mid-run"

        # The re-run, and the clean run it must equal, side by side.
        with (
            running(MATERIALIZE_CHAINS, env(crashed, "crashed"), tmp_path / "rerun.log") as rerun,
            running(MATERIALIZE_CHAINS, env(clean, "clean"), tmp_path / "clean.log") as reference,
        ):
            for process, log in ((rerun, "rerun.log"), (reference, "clean.log")):
                assert process.wait(timeout=120) == 0, (tmp_path / log).read_text()[-3000:]

        assert_same_state(
            warehouse_state(crashed, CHAIN_TABLES), warehouse_state(clean, CHAIN_TABLES)
        )
        final = Warehouse(crashed)
        try:
            latest = final.read_frame(
                "SELECT run_id, count(*) AS n, bool_and(status = 'ok') AS ok "
                "FROM sync_stock_results GROUP BY run_id ORDER BY max(recorded_at) DESC"
            )
        finally:
            final.dispose()
        assert latest.iloc[0]["n"] == SYMBOL_COUNT and latest.iloc[0]["ok"]
