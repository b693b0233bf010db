"""Resource bindings: validated settings for configuration, secrets through `EnvVar`.

`resources()` validates the whole environment first (`volaris_assets.settings`), so a mistyped
variable stops the code location from loading with one line per problem instead of failing a
run later. An unset optional variable binds nothing (an `EnvVar` for an unset variable fails at
launch), so a user with no keys gets the simulated market and the SQLite warehouse.
"""

from __future__ import annotations

import os
from typing import TypeVar

import dagster as dg

from volaris_assets import settings as settings_module
from volaris_assets.history.resource import HistoryResource
from volaris_assets.resources.market_data import (
    SECRET_FIELDS,
    SETTING_FIELDS,
    HistoryDataResource,
    MarketDataResource,
    ProfileDataResource,
)
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.settings import Settings


def _env(name: str) -> dg.EnvVar | None:
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else None


R = TypeVar("R", bound=MarketDataResource)
# Capabilities whose symbols can be pooled over several providers (VOLARIS_*_MODE).
POOLABLE = ("chain", "intraday", "daily")


def market_data(capability: str, settings: Settings, kind: type[R] = MarketDataResource) -> R:
    """The `capability`'s resource (of `kind`, for the history and profile capabilities) as the
    environment configures it."""
    credentials = {field: _env(env) for field, env in {**SECRET_FIELDS, **SETTING_FIELDS}.items()}
    modes = {"mode": settings.mode(capability)} if capability in POOLABLE else {}
    return kind(
        capability=capability,
        providers=settings.providers(capability),
        **modes,
        concurrency=settings.concurrency,
        retry_base_s=settings.retry_base_s,
        rate_limits=settings.rate_limits,
        min_success_rate=settings.min_success_rate,
        **{k: v for k, v in credentials.items() if v is not None},
    )


def history_tiers(settings: Settings) -> HistoryResource:
    """The cold store and retention windows; the URL through `EnvVar`, as a secret (settings
    refuse credentials in it, but a bucket name is still nobody else's business)."""
    return HistoryResource(
        url=dg.EnvVar("VOLARIS_HISTORY_URL") if settings.history_url else None,
        retain_results_days=settings.retain_results_days,
        retain_rejections_days=settings.retain_rejections_days,
        retain_intraday_days=settings.retain_intraday_days,
    )


def resources(settings: Settings | None = None) -> dict[str, dg.ConfigurableResource]:
    """Every resource of the code location, from `settings` (default: the environment,
    validated here); bound in this one place so that the UI, the headless `materialize` and the
    cluster's workers see the same set."""
    settings = settings or settings_module.load()
    return {
        "chain_data": market_data("chain", settings),
        "intraday_data": market_data("intraday", settings),
        "daily_data": market_data("daily", settings),
        "history_data": market_data("history", settings, HistoryDataResource),
        "profile_data": market_data("profile", settings, ProfileDataResource),
        "history": history_tiers(settings),
        "warehouse": WarehouseResource(
            database_url=_env("DATABASE_URL"), reconnect_window_s=settings.db_reconnect_s
        ),
        "notifier": DiscordNotifier(
            webhook_url=_env("DISCORD_WEBHOOK_URL"),
            dedup_db_path=settings.notify_dedup_db,
            simulated_capabilities=settings.simulated_capabilities(),
        ),
    }
