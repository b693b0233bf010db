"""The `history` capability as a Dagster resource: past sessions' option chains.

A `MarketDataResource` in every respect (the same retries, circuit breakers and shared provider
budget, so every request of a bootstrap takes its turn with everyone else's) whose providers
are the ones that sell history, in the order of `VOLARIS_HISTORY_PROVIDERS`: Databento,
Polygon, or the simulated market, which replays any day. Its chains are asked through
`providers.past_chains.HistoryChain`.
"""

from __future__ import annotations

from typing import Literal

from volaris_assets.resources.definitions import market_data
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.settings import Settings


class HistoryDataResource(MarketDataResource):
    """Providers of past option chains; secrets arrive through `EnvVar`, as for every market
    data resource."""

    capability: Literal["history"] = "history"  # type: ignore[assignment]


def history_data(settings: Settings) -> HistoryDataResource:
    """The resource as the environment configures it (unset keys bind nothing)."""
    return market_data("history", settings, HistoryDataResource)
