"""Company profiles through the same guards as every other request: a fallback chain of the
sources that have `profile(symbol)` (Finnhub's `/stock/profile2`), each request paced by the
provider's shared budget, retried and circuit-broken like a chain or a bar request."""

from __future__ import annotations

from dataclasses import asdict

import pandas as pd

from volaris_assets.providers.resilience import FallbackChain, Fetched


class ProfileChain(FallbackChain):
    """A fallback chain asked for company profiles."""

    def rotated(self, start_with: str | None) -> ProfileChain:
        return ProfileChain.of(super().rotated(start_with))

    async def profile(self, symbol: str) -> Fetched:
        """One row: symbol, name, and the provider's sector/industry labels as it sends them."""

        async def one(source) -> pd.DataFrame:
            return pd.DataFrame([asdict(await source.profile(symbol))])

        return await self._first_answer(one)
