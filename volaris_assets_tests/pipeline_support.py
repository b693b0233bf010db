"""Drive whole materializations in tests: the project's assets with test resources."""

from __future__ import annotations

import tempfile

import dagster as dg

from volaris_assets.history.resource import HistoryResource
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.volatility.assets import iv_metrics

SESSION = "2026-11-24"
SNAPSHOT = "2026-11-24-15:45"
SESSION_ASSETS = [daily_bars, intraday_bars, iv_metrics, wheel_premiums]


def resources(database_url: str, **market: object) -> dict[str, object]:
    """Simulated providers (unless `market` overrides) and the given warehouse."""
    return {
        "chain_data": MarketDataResource(capability="chain", **market),
        "intraday_data": MarketDataResource(capability="intraday", **market),
        "daily_data": MarketDataResource(capability="daily", **market),
        "warehouse": WarehouseResource(database_url=database_url),
        "notifier": DiscordNotifier(),
        # A cold tier of its own (created on first write), never a developer's data/history.
        "history": HistoryResource(url=tempfile.mkdtemp(prefix="volaris-history-")),
    }


def materialize_all(
    database_url: str, instance: dg.DagsterInstance, **market: object
) -> list[dg.ExecuteInProcessResult]:
    """Universe, one option snapshot, then every session asset for SESSION."""
    res = resources(database_url, **market)
    results = [
        dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance),
        dg.materialize([option_chains], partition_key=SNAPSHOT, resources=res, instance=instance),
        dg.materialize(SESSION_ASSETS, partition_key=SESSION, resources=res, instance=instance),
    ]
    assert all(r.success for r in results)
    return results


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict[str, object]:
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == asset:
            meta = event.materialization.metadata
            return {k: getattr(v, "value", v) for k, v in meta.items()}
    raise KeyError(asset)


def sandbox_market(settings: dict[str, str], providers: str, **tuning: object) -> dict[str, object]:
    """MarketDataResource fields pointing `providers` at a sandbox (fast retries for tests)."""
    from volaris_assets.resources.market_data import SECRET_FIELDS, SETTING_FIELDS

    by_env = {env: field for field, env in {**SECRET_FIELDS, **SETTING_FIELDS}.items()}
    fields = {by_env[key]: value for key, value in settings.items() if key in by_env}
    defaults = {
        "retry_base_s": 0.01,
        "retry_max_s": 0.05,
        "retry_jitter_s": 0.01,
        "request_timeout_s": 5.0,
        "breaker_cooldown_s": 0.2,
        "rate_limits": "schwab=500/1,polygon=500/1",
    }
    return {"providers": providers, **fields, **defaults, **tuning}
