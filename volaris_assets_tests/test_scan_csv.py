"""The scan's results CSV: one row per symbol (successes and failures), the best put of each
scanned symbol as the warehouse holds it, linked from the materialization's metadata. A real
scan over the sandbox with injected 5xx, on SQLite and PostgreSQL."""

import csv
import io
from pathlib import Path

import dagster as dg

from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.results_csv import CSV_COLUMNS, CSV_NAME, METADATA_KEY
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import resources, sandbox_market
from volaris_assets_tests.sandbox_fixtures import SANDBOX_SESSION


def test_every_symbol_has_a_row_with_its_outcome_and_best_put(
    warehouse_url, small_universe, instance, clean_sandbox
):
    chain = MarketDataResource(
        capability="chain",
        **sandbox_market(clean_sandbox.settings(), "schwab", retry_attempts=1),
        min_success_rate=0.0,
    )
    res = {**resources(warehouse_url), "chain_data": chain}
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    clean_sandbox.set_faults("server_error=0.4")
    scan = dg.materialize(
        [wheel_premiums], partition_key=SANDBOX_SESSION, resources=res, instance=instance
    )

    [event] = scan.get_asset_materialization_events()
    path = Path(event.materialization.metadata[METADATA_KEY].value)
    assert path == Path(instance.storage_directory()) / scan.run_id / CSV_NAME
    text = path.read_text()
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = {row["symbol"]: row for row in csv.DictReader(io.StringIO(text))}
    assert sorted(rows) == sorted(small_universe)

    warehouse = Warehouse(warehouse_url)
    outcomes = warehouse.read_frame(
        "SELECT symbol, status, error_type, provider FROM sync_stock_results"
    ).set_index("symbol")
    premiums = warehouse.read_frame("SELECT * FROM stock_premiums")
    warehouse.dispose()
    failed = outcomes[outcomes["status"] != "ok"]
    assert 0 < len(failed) < len(small_universe)  # both kinds of row are in the file
    for symbol, outcome in outcomes.iterrows():
        row = rows[symbol]
        assert row["status"] == outcome["status"]
        assert row["provider"] == (outcome["provider"] or "")
        assert float(row["duration_s"]) >= 0 and int(row["attempts"]) >= 1
        if outcome["status"] != "ok":
            assert row["error_category"] == outcome["error_type"] == "server_error"
            assert row["error"] and row["best_premium"] == "" and row["puts_in_band"] == ""
            continue
        assert row["error_category"] == "" and row["error"] == ""
        mine = premiums[premiums["symbol"] == symbol]
        assert int(row["puts_in_band"]) == len(mine)
        if mine.empty:
            assert row["best_premium"] == ""
            continue
        best = mine.loc[mine["annual_return"].idxmax()]
        assert float(row["strike"]) == best["strike"]
        assert row["expiration"] == str(best["expiration"])[:10]
        assert float(row["best_premium"]) == round(best["premium"], 6)
        assert float(row["annualized_yield"]) == round(best["annual_return"], 6)
        assert float(row["delta"]) == round(best["delta"], 6)
