"""Resource bindings: configuration from the environment, secrets through `EnvVar`.

An unset optional variable binds nothing (an `EnvVar` for an unset variable fails at launch), so a
user with no keys gets the simulated market and the SQLite warehouse.
"""

from __future__ import annotations

import os

import dagster as dg

from volaris_assets.resources.market_data import SECRET_FIELDS, SETTING_FIELDS, MarketDataResource
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.resources.warehouse import WarehouseResource

CAPABILITY_VARIABLES = {
    "chain": "VOLARIS_CHAIN_PROVIDERS",
    "intraday": "VOLARIS_INTRADAY_PROVIDERS",
    "daily": "VOLARIS_DAILY_PROVIDERS",
}


def _env(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name) else None


def market_data(capability: str) -> MarketDataResource:
    credentials = {field: _env(env) for field, env in {**SECRET_FIELDS, **SETTING_FIELDS}.items()}
    tuning = {
        key: int(os.environ[env]) if key != "retry_base_s" else float(os.environ[env])
        for key, env in (
            ("concurrency", "VOLARIS_CONCURRENCY"),
            ("retry_base_s", "VOLARIS_RETRY_BASE_S"),
        )
        if os.environ.get(env)
    }
    return MarketDataResource(
        capability=capability,
        rate_limits=os.environ.get("VOLARIS_RATE_LIMITS", ""),
        providers=os.environ.get(CAPABILITY_VARIABLES[capability]) or "simulated",
        **{k: v for k, v in credentials.items() if v is not None},
        **tuning,
    )


def resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "chain_data": market_data("chain"),
        "intraday_data": market_data("intraday"),
        "daily_data": market_data("daily"),
        "warehouse": WarehouseResource(database_url=_env("DATABASE_URL")),
        "notifier": DiscordNotifier(
            webhook_url=_env("DISCORD_WEBHOOK_URL"),
            dedup_db_path=os.environ.get("VOLARIS_NOTIFY_DEDUP_DB"),
        ),
    }
