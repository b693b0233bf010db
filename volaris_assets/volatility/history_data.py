"""The `history` capability as a Dagster resource: past sessions' option chains.

A `MarketDataResource` in every respect (the same retries, circuit breakers and shared provider
budget, so every request of a bootstrap takes its turn with everyone else's) whose providers
are the ones that sell history, in the order of `VOLARIS_HISTORY_PROVIDERS`: Databento,
Polygon, or the simulated market, which replays any day. Its chains are asked through
`providers.past_chains.HistoryChain`.
"""

from __future__ import annotations

import os
from typing import Literal

import dagster as dg

from volaris_assets.resources.market_data import SECRET_FIELDS, SETTING_FIELDS, MarketDataResource
from volaris_assets.settings import Settings


class HistoryDataResource(MarketDataResource):
    """Providers of past option chains; secrets arrive through `EnvVar`, as for every market
    data resource."""

    capability: Literal["history"] = "history"  # type: ignore[assignment]


def history_data(settings: Settings) -> HistoryDataResource:
    """The resource as the environment configures it (unset keys bind nothing)."""
    credentials = {
        name: dg.EnvVar(env)
        for name, env in {**SECRET_FIELDS, **SETTING_FIELDS}.items()
        if os.environ.get(env, "").strip()
    }
    return HistoryDataResource(
        providers=settings.history_providers,
        concurrency=settings.concurrency,
        retry_base_s=settings.retry_base_s,
        rate_limits=settings.rate_limits,
        min_success_rate=settings.min_success_rate,
        **credentials,
    )
