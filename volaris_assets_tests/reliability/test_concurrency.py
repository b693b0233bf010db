"""Two runs of the same partition at once, on PostgreSQL: both succeed, no deadlock, no
duplicate, and the warehouse ends exactly as after one clean run.

This is what a retry launched while the original is still running, or a backfill overlapping a
schedule, does in production. Each run is a real `dagster asset materialize` process; both
write every symbol's chain in one transaction per symbol, so they contend row by row.
"""

from __future__ import annotations

import dagster as dg
import pandas as pd

from volaris_assets.options.assets import option_chains
from volaris_assets.universe.constituents import SP500, index_members
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.pipeline_support import resources
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import (
    CHAIN_TABLES,
    MATERIALIZE_CHAINS,
    SNAPSHOT,
    materialize_universe,
    subprocess_env,
)
from volaris_assets_tests.reliability.processes import running
from volaris_assets_tests.reliability.warehouse_state import assert_same_state, warehouse_state

# Enough symbols (simulated market, ~0.07 s each) that the two runs overlap for seconds.
SYMBOL_COUNT = 40


def run_windows(url: str) -> pd.DataFrame:
    warehouse = Warehouse(url)
    try:
        return warehouse.read_frame(
            "SELECT run_id, count(*) AS symbols, count(DISTINCT symbol) AS distinct_symbols, "
            "bool_and(status = 'ok') AS all_ok, min(recorded_at) AS first, "
            "max(recorded_at) AS last FROM sync_stock_results GROUP BY run_id"
        )
    finally:
        warehouse.dispose()


def test_two_runs_of_one_partition_at_once(scratch_db, tmp_path, instance):
    symbols = [m.symbol for m in index_members((SP500,)).members][:SYMBOL_COUNT]
    assert materialize_universe(scratch_db, symbols, instance).success
    logs = [tmp_path / f"run{i}.log" for i in (1, 2)]
    homes = [tmp_path / f"home{i}" for i in (1, 2)]
    for home in homes:
        home.mkdir()
    with (
        running(MATERIALIZE_CHAINS, subprocess_env(scratch_db, str(homes[0])), logs[0]) as first,
        running(MATERIALIZE_CHAINS, subprocess_env(scratch_db, str(homes[1])), logs[1]) as second,
    ):
        codes = [first.wait(timeout=120), second.wait(timeout=120)]
    output = "\n".join(log.read_text() for log in logs)
    assert codes == [0, 0], output[-4000:]
    assert "deadlock" not in output.lower()

    windows = run_windows(scratch_db)
    assert len(windows) == 2
    assert (windows["symbols"] == SYMBOL_COUNT).all()
    assert (windows["distinct_symbols"] == SYMBOL_COUNT).all()
    assert windows["all_ok"].all(), "a symbol failed (write_failed means a deadlock or conflict)"
    a, b = windows.iloc[0], windows.iloc[1]
    assert a["first"] < b["last"] and b["first"] < a["last"], "the runs did not overlap"

    with scratch_database(postgres_url(), "once") as once:
        assert materialize_universe(once, symbols, instance).success
        single = dg.materialize(
            [option_chains], partition_key=SNAPSHOT, resources=resources(once), instance=instance
        )
        assert single.success
        assert_same_state(
            warehouse_state(scratch_db, CHAIN_TABLES), warehouse_state(once, CHAIN_TABLES)
        )
