"""Alpaca Market Data v2: stock bars through the multi-symbol endpoint, and quotes from snapshots.

Auth is the `APCA-API-KEY-ID` / `APCA-API-SECRET-KEY` header pair. `/v2/stocks/bars` answers
`{"bars": {"AAPL": [{t, o, h, l, c, v, n, vw}]}, "next_page_token": str | null}`; `limit` caps
bars per page across all symbols, so one symbol's bars span pages and are merged by the key
Alpaca echoes. `bars` may be `null` (no trades in the window). `t` is RFC 3339 UTC; daily bars
are stamped at midnight New York. The free plan only has the IEX feed (`ALPACA_FEED=iex`).
`/v2/stocks/snapshots?symbols=A,B` answers a map symbol -> {latestTrade{t, p}, latestQuote{t,
bp, ap}, dailyBar{c, v}, prevDailyBar{c}} (notes §2.2); an unknown symbol is absent or null.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from volaris_assets.providers.base import BAR_COLUMNS, QUOTE_COLUMNS, canonical, quote_symbol
from volaris_assets.providers.http import (
    SHORT_OHLCV,
    HttpSource,
    bad_data,
    bar_frame,
    field,
    iso_to_utc,
    numeric,
)
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, to_provider

NAME = "alpaca"
DEFAULT_BASE = "https://data.alpaca.markets"
DEFAULT_FEED = "iex"
REQUIRED_SETTINGS: tuple[str, ...] = ("ALPACA_API_KEY", "ALPACA_API_SECRET")
CAPABILITIES: frozenset[str] = frozenset({"intraday", "daily"})
# Symbols per snapshots request: Alpaca's stock cap is not documented (notes §2.2; its options
# snapshots take 100); 200 keeps the URL short and 520 symbols in three requests.
QUOTE_BATCH = 200
# Symbols per bars request: 100 five-minute windows of 1-minute bars fill a tenth of a page,
# and a whole session of them (39,000 bars) four pages; the URL stays under 1 KB.
BAR_BATCH = 100
PAGE_LIMIT = 10000  # the documented maximum per page
MAX_PAGES = 500
_TIMEFRAME = {"1m": "1Min", "5m": "5Min", "1d": "1Day"}


class AlpacaClient(HttpSource):
    """`BarSource` and `BatchBarSource` over Alpaca's historical stock bars, `QuoteSource`
    over its snapshots."""

    name = NAME
    max_quote_batch = QUOTE_BATCH
    max_bar_batch = BAR_BATCH

    def __init__(
        self,
        *,
        api_key: str,
        api_secret: str,
        base_url: str = DEFAULT_BASE,
        feed: str = DEFAULT_FEED,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, client)
        self._headers = {"APCA-API-KEY-ID": api_key, "APCA-API-SECRET-KEY": api_secret}
        self._feed = feed
        self.pages_fetched = 0

    async def quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        params = {
            "symbols": ",".join(to_provider(symbol, NAME) for symbol in symbols),
            "feed": self._feed,
        }
        payload = await self._get_json("/v2/stocks/snapshots", params=params, headers=self._headers)
        if not isinstance(payload, dict):
            raise bad_data(NAME, "snapshots payload is not an object")
        return parse_snapshots(payload)

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        return await self.bars_many([symbol], timeframe, start, end)

    async def bars_many(
        self, symbols: Sequence[str], timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        """One paginated request for every symbol: `limit` caps bars per page across all of
        them, so a symbol's bars may span pages and are merged by the key Alpaca echoes."""
        if timeframe not in _TIMEFRAME:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        if len(symbols) > BAR_BATCH:
            raise ValueError(f"{len(symbols)} symbols in one bars request, at most {BAR_BATCH}")
        params = {
            "symbols": ",".join(to_provider(symbol, NAME) for symbol in symbols),
            "timeframe": _TIMEFRAME[timeframe],
            "start": _rfc3339(start),
            "end": _rfc3339(end),
            "limit": str(PAGE_LIMIT),
            "adjustment": "raw",
            "feed": self._feed,
            "sort": "asc",
        }
        rows: dict[str, list[dict[str, Any]]] = {symbol: [] for symbol in symbols}
        token: str | None = None
        for _ in range(MAX_PAGES):
            query = params if token is None else {**params, "page_token": token}
            payload = await self._get_json("/v2/stocks/bars", params=query, headers=self._headers)
            self.pages_fetched += 1
            _collect_bars(payload, rows)
            token = payload.get("next_page_token")
            if not token:
                frames = []
                for symbol, bars in rows.items():
                    if bars:
                        frames.append(parse_bars(bars, symbol, timeframe, start, end))
                        # A session of 1-minute bars for 100 symbols is ~0.3 s of pandas: one
                        # symbol (~3 ms) at a time, so that the rest of the run's requests,
                        # timers and budget turns are not held up for the whole of it. (On a
                        # worker thread it starved the loop anyway: pandas releases and
                        # retakes the GIL too often for the loop's thread to win it.)
                        await asyncio.sleep(0)
                return canonical(pd.concat(frames) if frames else pd.DataFrame(), BAR_COLUMNS)
            if not isinstance(token, str):
                raise bad_data(NAME, "next_page_token is not a string")
        raise bad_data(NAME, f"more than {MAX_PAGES} pages: pagination does not end")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _collect_bars(payload: Any, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Add one page's bars to the requested symbols' lists, by the key Alpaca echoes; a key
    that is no requested symbol is ignored."""
    if not isinstance(payload, dict):
        raise bad_data(NAME, "response is not a JSON object")
    bars = payload.get("bars")
    if bars is None:
        return
    if not isinstance(bars, dict):
        raise bad_data(NAME, "bars is not an object")
    for key, values in bars.items():
        try:
            symbol = normalize_symbol(key)
        except InvalidSymbol:
            continue
        if symbol in rows and isinstance(values, list):
            rows[symbol] += [bar for bar in values if isinstance(bar, dict)]


def parse_snapshots(payload: Mapping[str, Any]) -> pd.DataFrame:
    """Canonical quotes from a snapshots map (the latest trade's time, else the quote's)."""
    entries = [(key, value) for key, value in payload.items() if isinstance(value, dict)]

    def part(name: str, key: str) -> list[Any]:
        blocks = [value.get(name) for _, value in entries]
        return [block.get(key) if isinstance(block, dict) else None for block in blocks]

    traded = iso_to_utc(part("latestTrade", "t"))
    frame = pd.DataFrame(
        {
            "symbol": [quote_symbol(key) for key, _ in entries],
            "last": numeric(part("latestTrade", "p")),
            "bid": numeric(part("latestQuote", "bp")),
            "ask": numeric(part("latestQuote", "ap")),
            "volume": numeric(part("dailyBar", "v")),
            "prev_close": numeric(part("prevDailyBar", "c")),
            "quote_ts": traded.where(traded.notna(), iso_to_utc(part("latestQuote", "t"))),
            "provider": NAME,
        }
    )
    return canonical(frame, QUOTE_COLUMNS)


def parse_bars(
    rows: list[dict[str, Any]], symbol: str, timeframe: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical bars from Alpaca bar objects."""
    if not rows:
        return canonical(pd.DataFrame(), BAR_COLUMNS)
    raw = pd.DataFrame.from_records(rows)
    return bar_frame(
        raw,
        iso_to_utc(field(raw, "t")),
        symbol=symbol,
        timeframe=timeframe,
        provider=NAME,
        daily_zone="America/New_York",
        window=(start, end),
        names=SHORT_OHLCV,
    )


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> AlpacaClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    return AlpacaClient(
        api_key=settings["ALPACA_API_KEY"],
        api_secret=settings["ALPACA_API_SECRET"],
        base_url=settings.get("ALPACA_API_BASE") or DEFAULT_BASE,
        feed=settings.get("ALPACA_FEED") or DEFAULT_FEED,
        client=client,
    )
