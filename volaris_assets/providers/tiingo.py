"""Tiingo: end-of-day daily bars and IEX intraday bars.

Auth is the `Authorization: Token <key>` header (Tiingo also takes `token=` in the query; the
header keeps the key out of URLs). Neither endpoint echoes the ticker, so rows are labelled with
the requested symbol. Daily rows are dated "YYYY-MM-DDT00:00:00+00:00" (the session date at
UTC midnight); IEX rows are minute starts in UTC and carry `volume` only when `columns` asks for
it, and that volume is IEX-only, not consolidated. An error arrives as `{"detail": "..."}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from volaris_assets.providers.base import BAR_COLUMNS, ErrorCategory, ProviderError, canonical
from volaris_assets.providers.http import (
    HttpSource,
    bad_data,
    bar_frame,
    field,
    iso_to_utc,
)
from volaris_assets.symbols import to_provider

NAME = "tiingo"
DEFAULT_BASE = "https://api.tiingo.com"
REQUIRED_SETTINGS: tuple[str, ...] = ("TIINGO_API_KEY",)
CAPABILITIES: frozenset[str] = frozenset({"intraday", "daily"})
_RESAMPLE = {"1m": "1min", "5m": "5min"}


class TiingoClient(HttpSource):
    """`BarSource` over Tiingo's EOD and IEX endpoints."""

    name = NAME

    def __init__(
        self, *, api_key: str, base_url: str = DEFAULT_BASE, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(base_url, client)
        self._headers = {"Authorization": f"Token {api_key}"}

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        ticker = to_provider(symbol, NAME)
        last_day = (end - timedelta(microseconds=1)).date()
        dates = {"startDate": start.date().isoformat(), "endDate": last_day.isoformat()}
        if timeframe == "1d":
            path = f"/tiingo/daily/{ticker}/prices"
            params = {**dates, "resampleFreq": "daily", "format": "json"}
        elif timeframe in _RESAMPLE:
            path = f"/iex/{ticker}/prices"
            params = {
                **dates,
                "resampleFreq": _RESAMPLE[timeframe],
                "columns": "open,high,low,close,volume",
                "afterHours": "false",
            }
        else:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        payload = await self._get_json(path, params=params, headers=self._headers)
        return parse_prices(payload, symbol, timeframe, start, end)


def parse_prices(
    payload: Any, symbol: str, timeframe: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical bars from a Tiingo price array (EOD or IEX)."""
    if isinstance(payload, dict) and "detail" in payload:
        detail = str(payload["detail"]).lower()
        if "not found" in detail:
            raise ProviderError(ErrorCategory.NOT_FOUND, "ticker not found", provider=NAME)
        raise bad_data(NAME, "error detail in a 200 response")
    if not isinstance(payload, list):
        raise bad_data(NAME, "price payload is not an array")
    rows = [row for row in payload if isinstance(row, dict)]
    if not rows:
        return canonical(pd.DataFrame(), BAR_COLUMNS)
    raw = pd.DataFrame.from_records(rows)
    return bar_frame(
        raw,
        iso_to_utc(field(raw, "date")),
        symbol=symbol,
        timeframe=timeframe,
        provider=NAME,
        daily_zone="UTC",
        window=(start, end),
    )


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> TiingoClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    return TiingoClient(
        api_key=settings["TIINGO_API_KEY"],
        base_url=settings.get("TIINGO_API_BASE") or DEFAULT_BASE,
        client=client,
    )
