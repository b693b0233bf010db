"""Finnhub: quotes and company profiles (sector enrichment of the constituents table).

Auth is the `X-Finnhub-Token` header (Finnhub also takes `token=` in the query; the header
keeps the key out of URLs). `/stock/profile2` answers `{}` for an unknown symbol and `/quote`
answers zeros, both soft empties reported as `no_data`. `finnhubIndustry` is Finnhub's own
industry classification, the closest it has to a GICS sector.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from volaris_assets.providers.base import CompanyProfile
from volaris_assets.providers.http import HttpSource, bad_data, echoed_symbol, no_data, numeric
from volaris_assets.symbols import to_provider

NAME = "finnhub"
DEFAULT_BASE = "https://finnhub.io/api/v1"
REQUIRED_SETTINGS: tuple[str, ...] = ("FINNHUB_API_KEY",)
CAPABILITIES: frozenset[str] = frozenset({"profile"})


@dataclass(frozen=True)
class Quote:
    """A last-price snapshot (`/quote`)."""

    symbol: str
    price: float
    previous_close: float
    ts: datetime | None


class FinnhubClient(HttpSource):
    """Quotes and `CompanyProfile`s from Finnhub."""

    name = NAME

    def __init__(
        self, *, api_key: str, base_url: str = DEFAULT_BASE, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(base_url, client)
        self._headers = {"X-Finnhub-Token": api_key}

    async def _object(self, path: str, symbol: str) -> dict[str, Any]:
        payload = await self._get_json(
            path, params={"symbol": to_provider(symbol, NAME)}, headers=self._headers
        )
        if not isinstance(payload, dict):
            raise bad_data(NAME, f"{path} answer is not a JSON object")
        return payload

    async def quote(self, symbol: str) -> Quote:
        payload = await self._object("/quote", symbol)
        price, previous, stamp = numeric(
            [payload.get("c"), payload.get("pc"), payload.get("t")]
        ).tolist()
        if math.isnan(price) or price <= 0:
            raise no_data(NAME, symbol, "quote")
        ts = datetime.fromtimestamp(stamp, UTC) if not math.isnan(stamp) and stamp > 0 else None
        return Quote(symbol=symbol, price=price, previous_close=previous, ts=ts)

    async def profile(self, symbol: str) -> CompanyProfile:
        payload = await self._object("/stock/profile2", symbol)
        if not payload:
            raise no_data(NAME, symbol, "company profile")
        echoed_symbol(payload.get("ticker"), symbol, NAME)
        return CompanyProfile(
            symbol=symbol,
            name=_text(payload.get("name")),
            sector=_text(payload.get("finnhubIndustry")),
            sub_industry=None,
        )


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> FinnhubClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    return FinnhubClient(
        api_key=settings["FINNHUB_API_KEY"],
        base_url=settings.get("FINNHUB_API_BASE") or DEFAULT_BASE,
        client=client,
    )
