"""Yahoo Finance: option chains (`/v7/finance/options`) and bars (`/v8/finance/chart`).

No API key, but the options endpoint wants a session cookie and a "crumb" bound to it, as
yfinance does it: one request to the cookie host (fc.yahoo.com answers 404 with a cookie), then
`/v1/test/getcrumb`, then `crumb=` on every options call; a 401 re-fetches the crumb once.
A full chain is one request per expiration: the first call (no `date`) lists
`expirationDates` (epoch s) and carries the nearest one.

Wire facts: `optionChain.result[0]` has `underlyingSymbol`, `expirationDates`, `quote{
regularMarketPrice, regularMarketTime}` and `options[0]{expirationDate, calls, puts}` with
contracts `{contractSymbol, strike, lastPrice, bid, ask, volume, openInterest,
impliedVolatility (decimal), expiration}`; no greeks, so those stay NaN. The chart payload is
`chart.result[0]{meta{symbol}, timestamp[], indicators.quote[0]{open, high, low, close,
volume}}`; daily timestamps are the session's open.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd

from volaris_assets.providers.base import (
    BAR_COLUMNS,
    CHAIN_COLUMNS,
    WHOLE_CHAIN,
    ChainFilter,
    ErrorCategory,
    ProviderError,
    canonical,
)
from volaris_assets.providers.http import (
    HttpSource,
    bad_data,
    build_occ,
    echoed_symbol,
    epoch_to_utc,
    field,
    in_window,
    json_body,
    no_data,
    numeric,
    session_day,
)
from volaris_assets.symbols import to_provider

NAME = "yahoo"
DEFAULT_BASE = "https://query1.finance.yahoo.com"
DEFAULT_COOKIE_URL = "https://fc.yahoo.com"
REQUIRED_SETTINGS: tuple[str, ...] = ()
CAPABILITIES: frozenset[str] = frozenset({"chain", "intraday", "daily"})
MAX_EXPIRATIONS = 60  # a listed chain has ~20; more is a malformed payload, not more work
_INTERVAL = {"1m": "1m", "5m": "5m", "1d": "1d"}


class YahooClient(HttpSource):
    """`ChainSource` and `BarSource` over Yahoo Finance's JSON endpoints."""

    name = NAME

    def __init__(
        self,
        *,
        base_url: str = DEFAULT_BASE,
        cookie_url: str = DEFAULT_COOKIE_URL,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, client)
        self._cookie_url = cookie_url
        self._crumb: str | None = None
        self._crumb_lock = asyncio.Lock()

    async def _get_crumb(self, stale: str | None = None) -> str:
        async with self._crumb_lock:
            if self._crumb is not None and self._crumb != stale:
                return self._crumb
            await self._send("GET", self._cookie_url, ok_statuses=(404,))
            response = await self._send("GET", f"{self.base_url}/v1/test/getcrumb")
            crumb = response.text.strip()
            if not crumb or "<" in crumb or len(crumb) > 64:
                raise ProviderError(ErrorCategory.AUTH, "no crumb issued", provider=NAME)
            self._crumb = crumb
            return crumb

    async def _options(self, ticker: str, params: Mapping[str, str]) -> dict[str, Any]:
        crumb = await self._get_crumb()
        for attempt in (1, 2):
            response = await self._send(
                "GET",
                f"{self.base_url}/v7/finance/options/{ticker}",
                ok_statuses=(401,) if attempt == 1 else (),
                params={**params, "crumb": crumb},
            )
            if response.status_code != 401:
                return _option_result(json_body(response, NAME))
            crumb = await self._get_crumb(stale=crumb)
        raise AssertionError("unreachable: the second attempt raises on 401")

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        """The first call lists the expirations and carries the nearest; one more call per
        other expiration that `only` covers (Yahoo has no side filter: both sides come)."""
        ticker = to_provider(symbol, NAME)
        first = await self._options(ticker, {})
        echoed_symbol(first.get("underlyingSymbol"), symbol, NAME)
        dates = first.get("expirationDates") or []
        if not isinstance(dates, list) or len(dates) > MAX_EXPIRATIONS:
            raise bad_data(NAME, "expirationDates is not a short list")
        blocks = list(_option_blocks(first))
        seen = {block.get("expirationDate") for block in blocks}
        for expiration in dates:
            if expiration in seen or not _wanted(expiration, only):
                continue
            result = await self._options(ticker, {"date": str(expiration)})
            echoed_symbol(result.get("underlyingSymbol"), symbol, NAME)
            blocks.extend(_option_blocks(result))
        quote = first.get("quote") if isinstance(first.get("quote"), dict) else {}
        return parse_options(blocks, quote, symbol)

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        if timeframe not in _INTERVAL:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        ticker = to_provider(symbol, NAME)
        payload = await self._get_json(
            f"/v8/finance/chart/{ticker}",
            params={
                "interval": _INTERVAL[timeframe],
                "period1": str(int(start.timestamp())),
                "period2": str(int(end.timestamp())),
                "includePrePost": "false",
            },
        )
        return parse_chart(payload, symbol, timeframe, start, end)


def _wanted(expiration: Any, only: ChainFilter) -> bool:
    """Whether an `expirationDates` entry (epoch s, midnight UTC of the day) is in `only`'s
    range; an entry that is not a timestamp is asked for, and its answer validated as usual."""
    try:
        day = datetime.fromtimestamp(int(expiration), UTC).date()
    except (TypeError, ValueError, OverflowError, OSError):
        return True
    return only.covers(day)


def _option_result(payload: Any) -> dict[str, Any]:
    chain = payload.get("optionChain") if isinstance(payload, dict) else None
    if not isinstance(chain, dict):
        raise bad_data(NAME, "payload without optionChain")
    results = chain.get("result")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise ProviderError(ErrorCategory.NOT_FOUND, "optionChain has no result", provider=NAME)
    return results[0]


def _option_blocks(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    blocks = result.get("options") or []
    if not isinstance(blocks, list):
        raise bad_data(NAME, "options is not a list")
    return [block for block in blocks if isinstance(block, dict)]


def parse_options(
    blocks: list[dict[str, Any]], quote: Mapping[str, Any], symbol: str
) -> pd.DataFrame:
    """Canonical chain frame from the `options[]` blocks of every expiration."""
    records = []
    for block in blocks:
        for side, right in (("calls", "C"), ("puts", "P")):
            contracts = block.get(side) or []
            if not isinstance(contracts, list):
                raise bad_data(NAME, f"{side} is not a list")
            records += [{**c, "_right": right} for c in contracts if isinstance(c, dict)]
    if not records:
        raise no_data(NAME, symbol, "option contracts")
    raw = pd.DataFrame.from_records(records)
    frame = pd.DataFrame({"symbol": symbol, "right": raw["_right"]})
    expiry = epoch_to_utc(field(raw, "expiration"), "s")
    frame["expiration"] = expiry.dt.date.astype(object).where(expiry.notna(), None)
    frame["strike"] = numeric(field(raw, "strike"))
    frame["bid"] = numeric(field(raw, "bid"))
    frame["ask"] = numeric(field(raw, "ask"))
    # Yahoo publishes no mark; the quote midpoint is what the other providers' mark is.
    quoted = (frame["bid"] > 0) & (frame["ask"] > 0)
    frame["mark_price"] = ((frame["bid"] + frame["ask"]) / 2).where(quoted)
    frame["last"] = numeric(field(raw, "lastPrice"))
    frame["volume"] = numeric(field(raw, "volume"))
    frame["open_interest"] = numeric(field(raw, "openInterest"))
    frame["implied_volatility"] = numeric(field(raw, "impliedVolatility"))
    for greek in ("delta", "gamma", "theta", "vega"):
        frame[greek] = float("nan")
    frame["underlying_price"] = numeric([quote.get("regularMarketPrice")]).iloc[0]
    quote_ts = epoch_to_utc([quote.get("regularMarketTime")], "s").iloc[0]
    if pd.isna(quote_ts):
        quote_ts = pd.Timestamp(datetime.now(UTC))
    frame["quote_ts"] = quote_ts
    quote_day = quote_ts.tz_convert("America/New_York").date()
    frame["dte"] = [(e - quote_day).days if e is not None else None for e in frame["expiration"]]
    frame["dte"] = numeric(frame["dte"])
    frame["provider"] = NAME
    frame["occ_symbol"] = build_occ(frame)
    return canonical(frame, CHAIN_COLUMNS)


def parse_chart(
    payload: Any, symbol: str, timeframe: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical bars from a `/v8/finance/chart` payload."""
    chart = payload.get("chart") if isinstance(payload, dict) else None
    if not isinstance(chart, dict):
        raise bad_data(NAME, "payload without chart")
    results = chart.get("result")
    if not results:
        error = chart.get("error") if isinstance(chart.get("error"), dict) else {}
        if error.get("code") == "Not Found":
            raise ProviderError(ErrorCategory.NOT_FOUND, "chart: symbol not found", provider=NAME)
        raise bad_data(NAME, "chart without result")
    result = results[0] if isinstance(results, list) and isinstance(results[0], dict) else None
    if result is None:
        raise bad_data(NAME, "chart result is not an object")
    meta = result.get("meta") if isinstance(result.get("meta"), dict) else {}
    echoed_symbol(meta.get("symbol"), symbol, NAME)
    stamps = result.get("timestamp") or []
    indicators = result.get("indicators") if isinstance(result.get("indicators"), dict) else {}
    quotes = indicators.get("quote") or [{}]
    quote = quotes[0] if isinstance(quotes, list) and isinstance(quotes[0], dict) else {}
    if not isinstance(stamps, list):
        raise bad_data(NAME, "chart timestamp is not a list")
    if not stamps:
        return canonical(pd.DataFrame(), BAR_COLUMNS)
    ts = epoch_to_utc(stamps, "s")
    if timeframe == "1d":
        ts = session_day(ts, "America/New_York")
    frame = pd.DataFrame({"symbol": symbol, "timeframe": timeframe, "ts": ts})
    for column in ("open", "high", "low", "close", "volume"):
        values = quote.get(column)
        if not isinstance(values, list) or len(values) != len(stamps):
            values = [None] * len(stamps)
        frame[column] = numeric(values)
    frame["provider"] = NAME
    return canonical(in_window(frame, start, end), BAR_COLUMNS)


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> YahooClient:
    """A client from environment-style settings (no credentials needed)."""
    return YahooClient(
        base_url=settings.get("YAHOO_API_BASE") or DEFAULT_BASE,
        cookie_url=settings.get("YAHOO_COOKIE_URL") or DEFAULT_COOKIE_URL,
        client=client,
    )
