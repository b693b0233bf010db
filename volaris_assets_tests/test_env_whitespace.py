"""Variables with stray whitespace (a secret mounted from a file ends in a newline) work as
the settings check reads them: stripped, through the code location's own `EnvVar` bindings."""

from __future__ import annotations

import dagster as dg

from volaris_assets.options.assets import option_chains
from volaris_assets.resources.definitions import resources
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)
SNAPSHOT = "2026-03-11-10:45"  # the window before the sandbox's clock (SANDBOX_AS_OF, 11:00 ET)


def test_keys_urls_and_the_warehouse_url_are_used_stripped(
    clean_sandbox, warehouse_url, small_universe, instance, monkeypatch
):
    for name, value in clean_sandbox.settings().items():
        monkeypatch.setenv(name, f" {value}\n")
    monkeypatch.setenv("DATABASE_URL", f"{warehouse_url}\n")
    monkeypatch.setenv("VOLARIS_CHAIN_PROVIDERS", "schwab")
    monkeypatch.setenv("VOLARIS_RATE_LIMITS", "schwab=500/1")
    bound = resources()
    assert dg.materialize([sp500_constituents, scan_universe], resources=bound, instance=instance)
    chains = dg.materialize(
        [option_chains], partition_key=SNAPSHOT, resources=bound, instance=instance
    )
    assert chains.success
    warehouse = Warehouse(warehouse_url)
    outcomes = warehouse.read_frame("SELECT symbol, status, provider FROM sync_stock_results")
    assert sorted(outcomes["symbol"]) == sorted(small_universe)
    assert set(outcomes["status"]) == {"ok"} and set(outcomes["provider"]) == {"schwab"}
    warehouse.dispose()
