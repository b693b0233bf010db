"""Polygon.io (now Massive): aggregates, the options chain snapshot and the stocks snapshot.

Auth is the `Authorization: Bearer <key>` header, chosen over the `apiKey` query parameter so
the key never appears in a URL (URLs end up in logs and in `next_url`). Pagination follows
`next_url` while it points at the configured host; the header re-attaches the key, since
`next_url` never carries it.

Wire facts: snapshot results carry `details{contract_type, expiration_date, strike_price,
ticker}`, `greeks{delta, gamma, theta, vega}` (omitted when Polygon has none),
`implied_volatility` (decimal), `open_interest`, `day{volume, close, last_updated ns}`,
`last_quote{bid, ask, midpoint, last_updated ns}`, `last_trade{price}`,
`underlying_asset{ticker, price}`; aggregates carry `ticker` and `results[{t ms, o, h, l, c, v}]`
with `t` the window start (daily bars at midnight ET). The stocks snapshot
(`/v2/snapshot/locale/us/markets/stocks/tickers?tickers=A,B`) answers `tickers[{ticker,
updated ns, day{c, v}, lastQuote{p bid, P ask, t ns}, lastTrade{p, t ns}, prevDay{c}}]`
(notes §2.1).

Past chains (the `history` capability): `/v3/reference/options/contracts` with `as_of` lists the
contracts as they stood that day (`ticker`, `underlying_ticker`, `contract_type`,
`expiration_date`, `strike_price`; notes §3.2), and each contract's daily aggregate gives its
close. These are trade prices (Polygon keeps no historical quotes or open interest) and every
contract costs a request, so only what the 30-day ATM IV reads is asked for: the two strikes
around the underlying's close, both sides, of the expirations on either side of 30 days (at
most eight aggregates, ten requests per symbol and session). A contract that did not trade
that day has no aggregate and is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pandas as pd

from volaris_assets.providers.base import (
    BAR_COLUMNS,
    CHAIN_COLUMNS,
    QUOTE_COLUMNS,
    WHOLE_CHAIN,
    ChainFilter,
    ErrorCategory,
    ProviderError,
    canonical,
    quote_symbol,
)
from volaris_assets.providers.http import (
    SHORT_OHLCV,
    HttpSource,
    bad_data,
    bar_frame,
    build_occ,
    days_to_expiry,
    echoed_symbol,
    epoch_to_utc,
    field,
    no_data,
    numeric,
    same_origin,
)
from volaris_assets.providers.past_chains import HORIZON_DAYS, near_the_money, quotes_only
from volaris_assets.symbols import INDEX_SYMBOLS, to_provider

NAME = "polygon"
DEFAULT_BASE = "https://api.polygon.io"
REQUIRED_SETTINGS: tuple[str, ...] = ("POLYGON_API_KEY",)
CAPABILITIES: frozenset[str] = frozenset({"chain", "intraday", "daily", "history"})
# Tickers per stocks snapshot. Polygon sets no limit but the URL's length (notes §2.1); 250 is
# the cap of its universal snapshot, and the S&P 500 with the ETFs in three requests.
QUOTE_BATCH = 250

SNAPSHOT_PAGE_LIMIT = 250  # the documented maximum
CONTRACTS_PAGE_LIMIT = 1000  # the documented maximum of /v3/reference/options/contracts
AGGS_LIMIT = 50000
# A chain of 250-contract pages this long would be ~50k contracts: a cursor loop, not a chain.
MAX_PAGES = 200
_RANGE = {"1m": ("1", "minute"), "5m": ("5", "minute"), "1d": ("1", "day")}
_RIGHTS = {"call": "C", "put": "P"}
_CONTRACT_TYPES = {right: wire for wire, right in _RIGHTS.items()}


class PolygonClient(HttpSource):
    """`ChainSource`, `BarSource` and `QuoteSource` over the Polygon REST API."""

    name = NAME
    max_quote_batch = QUOTE_BATCH

    def __init__(
        self, *, api_key: str, base_url: str = DEFAULT_BASE, client: httpx.AsyncClient | None = None
    ) -> None:
        super().__init__(base_url, client)
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.pages_fetched = 0

    async def _pages(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every page of a paginated endpoint, following `next_url` on the configured host."""
        pages: list[dict[str, Any]] = []
        url: str | None = f"{self.base_url}{path}"
        query: Mapping[str, str] | None = params
        while url is not None:
            if len(pages) >= MAX_PAGES:
                raise bad_data(NAME, f"more than {MAX_PAGES} pages: pagination does not end")
            payload = await self._get_json(url, params=query, headers=self._headers)
            pages.append(_checked(payload))
            self.pages_fetched += 1
            next_url = payload.get("next_url")
            if next_url is not None and not isinstance(next_url, str):
                raise bad_data(NAME, "next_url is not a string")
            if next_url and not same_origin(next_url, self.base_url):
                raise bad_data(NAME, "next_url points at another host")
            url, query = (next_url or None), None
        return pages

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        ticker = to_provider(symbol, NAME)
        params = {"limit": str(SNAPSHOT_PAGE_LIMIT)}
        if only.right is not None:
            params["contract_type"] = _CONTRACT_TYPES[only.right]
        if only.expires_from is not None:
            params["expiration_date.gte"] = only.expires_from.isoformat()
        if only.expires_to is not None:
            params["expiration_date.lte"] = only.expires_to.isoformat()
        pages = await self._pages(f"/v3/snapshot/options/{ticker}", params)
        results = [r for page in pages for r in _results(page) if isinstance(r, dict)]
        if not results:
            raise no_data(NAME, symbol, "option contracts")
        return parse_snapshot(results, symbol)

    async def quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        """Stocks and ETFs from the stocks snapshot; indices (SPX, NDX...), which that endpoint
        does not know, from the indices snapshot: one request per kind present."""
        indices = [symbol for symbol in symbols if symbol in INDEX_SYMBOLS]
        stocks = [symbol for symbol in symbols if symbol not in INDEX_SYMBOLS]
        frames = []
        if stocks:
            frames.append(await self._stock_quotes(stocks))
        if indices:
            frames.append(await self._index_quotes(indices))
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    async def _stock_quotes(self, symbols: Sequence[str]) -> pd.DataFrame:
        tickers = ",".join(to_provider(symbol, NAME) for symbol in symbols)
        payload = _checked(
            await self._get_json(
                f"{self.base_url}/v2/snapshot/locale/us/markets/stocks/tickers",
                params={"tickers": tickers},
                headers=self._headers,
            )
        )
        items = payload.get("tickers") or []
        if not isinstance(items, list):
            raise bad_data(NAME, "tickers is not a list")
        return parse_tickers_snapshot([item for item in items if isinstance(item, dict)])

    async def _index_quotes(self, symbols: Sequence[str]) -> pd.DataFrame:
        tickers = ",".join(to_provider(symbol, NAME) for symbol in symbols)
        payload = _checked(
            await self._get_json(
                f"{self.base_url}/v3/snapshot/indices",
                params={"ticker.any_of": tickers, "limit": str(QUOTE_BATCH)},
                headers=self._headers,
            )
        )
        items = [item for item in _results(payload) if isinstance(item, dict)]
        return parse_indices_snapshot(items)

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        if timeframe not in _RANGE:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        multiplier, timespan = _RANGE[timeframe]
        first_ms, last_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000) - 1
        ticker = to_provider(symbol, NAME)
        pages = await self._pages(
            f"/v2/aggs/ticker/{ticker}/range/{multiplier}/{timespan}/{first_ms}/{last_ms}",
            {"adjusted": "false", "sort": "asc", "limit": str(AGGS_LIMIT)},
        )
        for page in pages:
            echoed_symbol(page.get("ticker"), symbol, NAME)
        results = [r for page in pages for r in _results(page) if isinstance(r, dict)]
        return parse_aggregates(results, symbol, timeframe, start, end)

    async def session_close_chain(self, symbol: str, day: date) -> pd.DataFrame:
        """The contracts around the money on either side of 30 days, at their close on `day`."""
        midnight = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        underlying = await self.bars(symbol, "1d", midnight, midnight + timedelta(days=1))
        if underlying.empty:
            raise no_data(NAME, symbol, f"close on {day}")
        close = float(underlying["close"].iloc[-1])
        pages = await self._pages(
            "/v3/reference/options/contracts",
            {
                # Reference endpoints name an index's options by the bare root (SPX, not
                # I:SPX); other symbols are spelled as stored.
                "underlying_ticker": symbol,
                "as_of": day.isoformat(),
                "expiration_date.gt": day.isoformat(),
                "expiration_date.lte": (day + timedelta(days=HORIZON_DAYS)).isoformat(),
                "limit": str(CONTRACTS_PAGE_LIMIT),
            },
        )
        contracts = parse_contracts(
            [r for page in pages for r in _results(page) if isinstance(r, dict)], symbol
        )
        wanted = near_the_money(contracts, close, day, strikes_per_side=1)
        wanted = wanted[wanted["ticker"].map(lambda t: isinstance(t, str) and t.startswith("O:"))]
        if wanted.empty:
            raise no_data(NAME, symbol, f"option contracts around the money on {day}")
        # Contracts missing an expiration or strike cost no request: validation counts them.
        priced = wanted["expiration"].notna() & wanted["strike"].notna()
        closes = pd.Series(float("nan"), index=wanted.index)
        for index, ticker in wanted.loc[priced, "ticker"].items():
            page = await self._get_json(
                f"/v2/aggs/ticker/{ticker}/range/1/day/{day.isoformat()}/{day.isoformat()}",
                params={"adjusted": "false"},
                headers=self._headers,
            )
            results = _results(_checked(page))
            last = results[-1] if results and isinstance(results[-1], dict) else {}
            closes[index] = numeric(pd.Series([last.get("c")])).iloc[0]
        traded = ~priced | closes.notna()
        if not (priced & traded).any():
            raise no_data(NAME, symbol, f"option trades on {day}")
        chain = wanted[traded].assign(mark_price=closes[traded])
        # A trade close stands for both sides: the aggregates carry no quotes.
        chain = chain.assign(
            bid=chain["mark_price"], ask=chain["mark_price"], underlying_price=close, provider=NAME
        )
        chain["occ_symbol"] = build_occ(chain)
        return quotes_only(chain, day)


def parse_contracts(results: list[dict[str, Any]], requested: str) -> pd.DataFrame:
    """`ticker`, symbol, expiration, strike and right of reference-contract results."""
    raw = pd.DataFrame.from_records(results)
    for echoed in set(field(raw, "underlying_ticker").dropna()):
        echoed_symbol(echoed, requested, NAME)
    expiration = pd.to_datetime(field(raw, "expiration_date"), format="%Y-%m-%d", errors="coerce")
    return pd.DataFrame(
        {
            "ticker": field(raw, "ticker"),
            "symbol": requested,
            "expiration": expiration.dt.date.astype(object).where(expiration.notna(), None),
            "strike": numeric(field(raw, "strike_price")),
            "right": field(raw, "contract_type").map(_RIGHTS),
        }
    )


def _checked(payload: Any) -> dict[str, Any]:
    """The page as a dict; Polygon can answer 200 with `status: ERROR | NOT_AUTHORIZED`."""
    if not isinstance(payload, dict):
        raise bad_data(NAME, "response is not a JSON object")
    status = str(payload.get("status", "OK")).upper()
    if status == "NOT_AUTHORIZED":
        raise ProviderError(ErrorCategory.AUTH, "plan not entitled to this data", provider=NAME)
    if status == "ERROR":
        raise bad_data(NAME, "status ERROR in a 200 response")
    return payload


def _results(page: Mapping[str, Any]) -> list[Any]:
    results = page.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        raise bad_data(NAME, "results is not a list")
    return results


def _nested(raw: pd.DataFrame, parent: str, child: str) -> pd.Series:
    return field(raw, parent).map(lambda v: v.get(child) if isinstance(v, dict) else None)


def parse_snapshot(results: list[dict[str, Any]], requested: str) -> pd.DataFrame:
    """Canonical chain frame from `/v3/snapshot/options` results (all pages)."""
    raw = pd.DataFrame.from_records(results)
    for echoed in set(_nested(raw, "underlying_asset", "ticker").dropna()):
        echoed_symbol(echoed, requested, NAME)
    frame = pd.DataFrame({"symbol": [requested] * len(raw)})
    frame["right"] = _nested(raw, "details", "contract_type").map(_RIGHTS)
    expiration = pd.to_datetime(
        _nested(raw, "details", "expiration_date"), format="%Y-%m-%d", errors="coerce"
    )
    frame["expiration"] = expiration.dt.date.astype(object).where(expiration.notna(), None)
    frame["strike"] = numeric(_nested(raw, "details", "strike_price"))
    frame["bid"] = numeric(_nested(raw, "last_quote", "bid"))
    frame["ask"] = numeric(_nested(raw, "last_quote", "ask"))
    frame["mark_price"] = numeric(_nested(raw, "last_quote", "midpoint"))
    frame["last"] = numeric(_nested(raw, "last_trade", "price"))
    frame["volume"] = numeric(_nested(raw, "day", "volume"))
    frame["open_interest"] = numeric(field(raw, "open_interest"))
    frame["implied_volatility"] = numeric(field(raw, "implied_volatility"))
    for greek in ("delta", "gamma", "theta", "vega"):
        frame[greek] = numeric(_nested(raw, "greeks", greek))
    frame["underlying_price"] = numeric(_nested(raw, "underlying_asset", "price"))
    quoted = epoch_to_utc(_nested(raw, "last_quote", "last_updated"), "ns")
    frame["quote_ts"] = quoted.where(
        quoted.notna(), epoch_to_utc(_nested(raw, "day", "last_updated"), "ns")
    )
    frame["dte"] = days_to_expiry(expiration, frame["quote_ts"])
    frame["provider"] = NAME
    frame["occ_symbol"] = build_occ(frame)
    return canonical(frame, CHAIN_COLUMNS)


def parse_tickers_snapshot(items: list[dict[str, Any]]) -> pd.DataFrame:
    """Canonical quotes from the stocks snapshot's `tickers` (the last trade, else the day's
    close so far; the snapshot's `updated`, else the last trade's time)."""
    raw = pd.DataFrame.from_records(items, columns=["ticker"] if not items else None)
    trade = numeric(_nested(raw, "lastTrade", "p"))
    updated = epoch_to_utc(field(raw, "updated"), "ns")
    frame = pd.DataFrame(
        {
            "symbol": [quote_symbol(ticker) for ticker in field(raw, "ticker")],
            "last": trade.where(trade.notna(), numeric(_nested(raw, "day", "c"))),
            "bid": numeric(_nested(raw, "lastQuote", "p")),
            "ask": numeric(_nested(raw, "lastQuote", "P")),
            "volume": numeric(_nested(raw, "day", "v")),
            "prev_close": numeric(_nested(raw, "prevDay", "c")),
            "quote_ts": updated.where(
                updated.notna(), epoch_to_utc(_nested(raw, "lastTrade", "t"), "ns")
            ),
            "provider": NAME,
        }
    )
    return canonical(frame, QUOTE_COLUMNS)


def parse_indices_snapshot(items: list[dict[str, Any]]) -> pd.DataFrame:
    """Canonical quotes from the indices snapshot's `results`: an index has a value, no bid,
    ask or volume. An unknown ticker comes back as an item with an `error` and no value; it is
    left out, as the stocks snapshot leaves out tickers it does not know."""
    known = [item for item in items if "error" not in item]
    raw = pd.DataFrame.from_records(known, columns=["ticker"] if not known else None)
    missing = pd.Series(float("nan"), index=raw.index)
    frame = pd.DataFrame(
        {
            "symbol": [quote_symbol(ticker) for ticker in field(raw, "ticker")],
            "last": numeric(field(raw, "value")),
            "bid": missing,
            "ask": missing,
            "volume": missing,
            "prev_close": numeric(_nested(raw, "session", "previous_close")),
            "quote_ts": epoch_to_utc(field(raw, "last_updated"), "ns"),
            "provider": NAME,
        }
    )
    return canonical(frame, QUOTE_COLUMNS)


def parse_aggregates(
    results: list[dict[str, Any]], symbol: str, timeframe: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical bars from aggregate results (`t` = window start, ms)."""
    if not results:
        return canonical(pd.DataFrame(), BAR_COLUMNS)
    raw = pd.DataFrame.from_records(results)
    return bar_frame(
        raw,
        epoch_to_utc(field(raw, "t"), "ms"),
        symbol=symbol,
        timeframe=timeframe,
        provider=NAME,
        daily_zone="America/New_York",
        window=(start, end),
        names=SHORT_OHLCV,
    )


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> PolygonClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    return PolygonClient(
        api_key=settings["POLYGON_API_KEY"],
        base_url=settings.get("POLYGON_API_BASE") or DEFAULT_BASE,
        client=client,
    )
