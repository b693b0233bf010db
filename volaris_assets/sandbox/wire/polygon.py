"""Polygon/Massive wire format: options chain snapshot, stocks tickers snapshot and aggregates,
`next_url` pagination.

Keys are accepted as `Authorization: Bearer` or `apiKey=`; `next_url` never carries the key,
as on the real API. Bodies follow the documented snapshot/aggregates shapes and the recorded
error bodies (`{"status": "ERROR", "request_id", "error"}`).

Past sessions (the IV history bootstrap): `/v3/reference/options/contracts?as_of=` lists the
simulated market's closing chain of that session, and an option ticker's daily aggregates
(`/v2/aggs/ticker/O:.../range/1/day/...`) close at the mid of the contract's closing quote: the
simulated market trades at mid, so a trade close and a quote tell the same price.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from volaris_assets.providers.simulated import SimulatedQuote
from volaris_assets.sandbox.market import chain_filter, faulted_chain, malform
from volaris_assets.sandbox.protocol import (
    Context,
    Reply,
    Request,
    json_reply,
    num,
    retry_after_header,
    route,
    whole,
)
from volaris_assets.sandbox.quotes import epoch_ms, listed_quotes, requested
from volaris_assets.symbols import INDEX_SYMBOLS, InvalidSymbol, normalize_symbol, occ_symbol

NAME = "polygon"
MAX_LIMIT = 250
CONTRACTS_MAX_LIMIT = 1000
_DATE_OPS = {
    "gt": lambda day, bound: day > bound,
    "gte": lambda day, bound: day >= bound,
    "lt": lambda day, bound: day < bound,
    "lte": lambda day, bound: day <= bound,
}
_TIMESPANS = {("1", "minute"): "1m", ("5", "minute"): "5m", ("1", "day"): "1d"}
_RIGHTS = {"": None, "call": "C", "put": "P"}


def _error(status: int, message: str, key: str = "error", state: str = "ERROR") -> Reply:
    return json_reply({"status": state, "request_id": uuid.uuid4().hex, key: message}, status)


def authorize(request: Request, ctx: Context) -> Reply | None:
    header = request.headers.get("Authorization") or ""
    offered = header[7:] if header.startswith("Bearer ") else request.query.get("apiKey", "")
    if not offered:
        return _error(401, "API Key was not provided")
    return None if offered == ctx.keys["api_key"] else _error(401, "Unknown API Key")


def rate_limited_reply(retry_after_s: float) -> Reply:
    reply = _error(
        429,
        "You've exceeded the maximum requests per minute, please wait or upgrade your "
        "subscription to continue.",
    )
    reply.headers["Retry-After"] = retry_after_header(retry_after_s)
    return reply


def _cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _offset(request: Request) -> int:
    cursor = request.query.get("cursor")
    if not cursor:
        return 0
    try:
        return int(json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"])
    except (ValueError, KeyError, TypeError):
        return -1


def _page(
    request: Request, ctx: Context, items: list[Any], default_limit: int, cap: int
) -> tuple[list[Any], str | None] | None:
    """One page of `items` and the `next_url` (None at the end); None for a bad cursor."""
    offset = _offset(request)
    if offset < 0:
        return None
    try:
        limit = int(request.query.get("limit", default_limit))
    except ValueError:
        limit = default_limit
    size = max(1, min(limit, cap, ctx.page_size))
    page = items[offset : offset + size]
    if offset + size >= len(items):
        return page, None
    query = {k: v for k, v in request.query.items() if k not in ("apiKey", "cursor")}
    query["cursor"] = _cursor(offset + size)
    return page, f"{request.base_url}{request.path}?{urlencode(query)}"


def _snapshot(request: Request, match: Any, ctx: Context) -> Reply:
    """The chain snapshot with the `contract_type` and `expiration_date.gte/.lte` filters."""
    query = request.query
    try:
        wanted = chain_filter(
            _RIGHTS[query.get("contract_type", "")],
            query.get("expiration_date.gte"),
            query.get("expiration_date.lte"),
        )
    except (KeyError, ValueError):
        return _error(400, "invalid contract_type or expiration_date filter")
    symbol = ctx.market.listed(match["ticker"], "polygon")
    if symbol is None:
        return json_reply({"status": "OK", "request_id": uuid.uuid4().hex, "results": []})
    chain = wanted.apply(ctx.market.chain(symbol))
    chain = faulted_chain(chain, ctx.fault, ctx.rng, ctx.row_fraction)
    results = [_contract(row, match["ticker"]) for row in chain.to_dict("records")]
    return _paged_reply(request, ctx, results, cap=MAX_LIMIT)


def _contract(row: dict[str, Any], ticker: str) -> dict[str, Any]:
    quote_ns = int(pd.Timestamp(row["quote_ts"]).value)
    right = "call" if row["right"] == "C" else "put"
    strike = float(row["strike"])
    occ = occ_symbol(row["symbol"], row["expiration"], row["right"], strike).replace(" ", "")
    item: dict[str, Any] = {
        "break_even_price": num(
            strike + (row["mark_price"] if right == "call" else -row["mark_price"]), 4
        ),
        "day": {
            "close": num(row["last"]),
            "volume": whole(row["volume"]),
            "last_updated": quote_ns,
        },
        "details": {
            "contract_type": right,
            "exercise_style": "american",
            "expiration_date": f"{row['expiration']:%Y-%m-%d}",
            "shares_per_contract": 100,
            "strike_price": strike,
            "ticker": f"O:{occ}",
        },
        "implied_volatility": num(row["implied_volatility"], 6),
        "open_interest": whole(row["open_interest"]),
        "last_quote": {
            "ask": num(row["ask"]),
            "ask_size": 10,
            "bid": num(row["bid"]),
            "bid_size": 10,
            "midpoint": num(row["mark_price"], 4),
            "last_updated": quote_ns,
            "timeframe": "REAL-TIME",
        },
        "last_trade": {"price": num(row["last"]), "size": 1, "sip_timestamp": quote_ns},
        "underlying_asset": {
            "ticker": ticker,
            "price": num(row["underlying_price"], 4),
            "last_updated": quote_ns,
            "timeframe": "REAL-TIME",
        },
    }
    greeks = {g: num(row[g], 6) for g in ("delta", "gamma", "theta", "vega")}
    if all(value is not None for value in greeks.values()):
        item["greeks"] = greeks  # Polygon omits the object when it has no greeks
    if item["implied_volatility"] is None:
        del item["implied_volatility"]
    return item


def _aggregates(request: Request, match: Any, ctx: Context) -> Reply:
    timeframe = _TIMESPANS.get((match["multiplier"], match["timespan"]))
    if timeframe is None:
        return _error(400, "unsupported multiplier/timespan in the sandbox")
    start, end = _bound(match["from"], False), _bound(match["to"], True)
    if start is None or end is None:
        return _error(400, "from/to must be YYYY-MM-DD or epoch ms")
    symbol = ctx.market.listed(match["ticker"], "polygon")
    bars = ctx.market.bars(symbol, timeframe, start, end) if symbol else pd.DataFrame()
    results = [
        {
            "v": num(row["volume"]),
            "vw": num((row["high"] + row["low"] + row["close"]) / 3, 4),
            "o": num(row["open"]),
            "c": num(row["close"]),
            "h": num(row["high"]),
            "l": num(row["low"]),
            "t": _stamp_ms(pd.Timestamp(row["ts"]), timeframe),
            "n": 1,
        }
        for row in bars.to_dict("records")
    ]
    paged = _page(request, ctx, results, default_limit=5000, cap=50000)
    if paged is None:
        return _error(400, "invalid cursor")
    page, next_url = paged
    if ctx.fault == "malformed":
        page = [dict(item) for item in page]
        malform(page, ctx.rng, ctx.row_fraction)
    payload: dict[str, Any] = {
        "ticker": match["ticker"],
        "queryCount": len(page),
        "resultsCount": len(page),
        "adjusted": request.query.get("adjusted", "true") == "true",
        "status": "OK",
        "request_id": uuid.uuid4().hex,
        "results": page,
    }
    if next_url:
        payload["next_url"] = next_url
    return json_reply(payload, cacheable=ctx.fault is None)


def _tickers_snapshot(request: Request, match: Any, ctx: Context) -> Reply:
    """The stocks snapshot for `tickers=A,B` (unknown tickers are left out; without `tickers`
    the real API answers the whole market, which the sandbox does not list)."""
    raw_symbols = requested(request.query.get("tickers", ""))
    if not raw_symbols:
        return _error(400, "the sandbox needs tickers=")
    stocks = [raw for raw in raw_symbols if not _names_an_index(raw)]
    items = [_ticker(raw, quote) for raw, quote in listed_quotes(stocks, ctx)]
    if ctx.fault == "malformed":
        malform(items, ctx.rng, ctx.row_fraction)
    payload = {"status": "OK", "request_id": uuid.uuid4().hex, "count": len(items)}
    return json_reply({**payload, "tickers": items}, cacheable=ctx.fault is None)


def _names_an_index(raw: str) -> bool:
    try:
        return normalize_symbol(raw) in INDEX_SYMBOLS
    except InvalidSymbol:
        return False


def _indices_snapshot(request: Request, match: Any, ctx: Context) -> Reply:
    """The indices snapshot for `ticker.any_of=I:SPX,I:NDX`: a value per index, and an item
    with an `error` for a ticker it does not know (the stocks snapshot serves no index)."""
    raw_symbols = requested(request.query.get("ticker.any_of", ""))
    if not raw_symbols:
        return _error(400, "the sandbox needs ticker.any_of=")
    quoted = dict(listed_quotes(raw_symbols, ctx, spelled_for="polygon"))
    items = [
        _index(raw, quoted[raw])
        if raw in quoted
        else {"ticker": raw, "error": "NOT_FOUND", "message": "Ticker not found."}
        for raw in raw_symbols
    ]
    if ctx.fault == "malformed":
        malform(items, ctx.rng, ctx.row_fraction)
    payload = {"status": "OK", "request_id": uuid.uuid4().hex}
    return json_reply({**payload, "results": items}, cacheable=ctx.fault is None)


def _index(raw: str, quote: SimulatedQuote) -> dict[str, Any]:
    change = quote.last - quote.prev_close
    return {
        "ticker": raw,
        "name": raw,
        "type": "indices",
        "market_status": "open",
        "timeframe": "REAL-TIME",
        "value": quote.last,
        "last_updated": epoch_ms(quote) * 1_000_000,
        "session": {
            "change": round(change, 4),
            "change_percent": round(100.0 * change / quote.prev_close, 4),
            "close": quote.last,
            "previous_close": quote.prev_close,
        },
    }


def _ticker(raw: str, quote: SimulatedQuote) -> dict[str, Any]:
    stamp_ns = epoch_ms(quote) * 1_000_000
    change = quote.last - quote.prev_close
    return {
        "ticker": raw,
        "todaysChange": round(change, 4),
        "todaysChangePerc": round(100.0 * change / quote.prev_close, 4),
        "updated": stamp_ns,
        "day": {"c": quote.last, "v": quote.volume},
        "lastQuote": {"P": quote.ask, "S": 3, "p": quote.bid, "s": 2, "t": stamp_ns},
        "lastTrade": {"p": quote.last, "s": 100, "t": stamp_ns, "x": 4},
        "prevDay": {"c": quote.prev_close},
    }


def _contracts(request: Request, match: Any, ctx: Context) -> Reply:
    """`/v3/reference/options/contracts` as of a past session: the contracts of its closing
    chain, filtered by `contract_type` and `expiration_date.gt/.gte/.lt/.lte`."""
    query = request.query
    symbol = ctx.market.listed(query.get("underlying_ticker", ""))
    try:
        day = date.fromisoformat(query.get("as_of", ""))
        bounds = {op: date.fromisoformat(query[f"expiration_date.{op}"]) for op in _DATE_OPS
                  if f"expiration_date.{op}" in query}  # fmt: skip
        right = _RIGHTS[query.get("contract_type", "")]
    except (KeyError, ValueError):
        return _error(400, "as_of, contract_type or expiration_date is invalid (the sandbox "
                      "needs as_of=YYYY-MM-DD)")  # fmt: skip
    chain = ctx.market.closing_chain(symbol, day) if symbol else None
    rows = [] if chain is None else chain.to_dict("records")
    results = [
        {
            "cfi": "OCASPS" if row["right"] == "C" else "OPASPS",
            "contract_type": "call" if row["right"] == "C" else "put",
            "exercise_style": "american",
            "expiration_date": f"{row['expiration']:%Y-%m-%d}",
            "primary_exchange": "BATO",
            "shares_per_contract": 100,
            "strike_price": float(row["strike"]),
            "ticker": _option_ticker(row),
            "underlying_ticker": query.get("underlying_ticker"),
        }
        for row in rows
        if (right is None or row["right"] == right)
        and all(_DATE_OPS[op](row["expiration"], bound) for op, bound in bounds.items())
    ]
    return _paged_reply(request, ctx, results, cap=CONTRACTS_MAX_LIMIT)


def _option_ticker(row: dict[str, Any]) -> str:
    occ = occ_symbol(row["symbol"], row["expiration"], row["right"], float(row["strike"]))
    return "O:" + occ.replace(" ", "")


def _option_aggregates(request: Request, match: Any, ctx: Context) -> Reply:
    """Daily aggregates of one option contract (`O:AAPL260320C00150000`) over past sessions:
    one bar per session the contract was listed, closing at the mid of its closing quote."""
    ticker = match["ticker"]
    root, tail = ticker[2:-15], ticker[-15:]
    start, end = _bound(match["from"], False), _bound(match["to"], True)
    symbol = ctx.market.listed(root)
    if start is None or end is None:
        return _error(400, "from/to must be YYYY-MM-DD or epoch ms")
    results = []
    day = start.date()
    while symbol and datetime.combine(day, datetime.min.time(), UTC) < end:
        chain = ctx.market.closing_chain(symbol, day)
        found = None if chain is None else chain[chain["occ_symbol"].str.endswith(tail)]
        if found is not None and not found.empty:
            row = found.iloc[0]
            close = num(row["mark_price"])
            last = num(row["last"])
            results.append(
                {
                    "v": whole(row["volume"]),
                    "vw": close,
                    "o": last,
                    "c": close,
                    "h": max(close, last),
                    "l": min(close, last),
                    "t": _stamp_ms(pd.Timestamp(day, tz="UTC"), "1d"),
                    "n": 1,
                }
            )
        day += timedelta(days=1)
    payload = {
        "ticker": ticker,
        "queryCount": len(results),
        "resultsCount": len(results),
        "adjusted": request.query.get("adjusted", "true") == "true",
        "status": "OK",
        "request_id": uuid.uuid4().hex,
        "results": results,
    }
    return json_reply(payload, cacheable=ctx.fault is None)


def _stamp_ms(ts: pd.Timestamp, timeframe: str) -> int:
    if timeframe == "1d":  # Polygon stamps daily bars at midnight New York
        ts = pd.Timestamp(ts.date()).tz_localize("America/New_York")
    return int(ts.timestamp() * 1000)


def _bound(text: str, inclusive_end: bool) -> datetime | None:
    """A `from`/`to` path value; a `to` date covers that whole day, a `to` in ms is inclusive."""
    if text.isdigit():
        moment = datetime.fromtimestamp(int(text) / 1000, UTC)
        return moment + timedelta(milliseconds=1) if inclusive_end else moment
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day + timedelta(days=1) if inclusive_end else day


ROUTES = [
    route("GET", r"^/v3/snapshot/options/(?P<ticker>[^/]+)$", "chain", _snapshot),
    route("GET", r"^/v3/reference/options/contracts$", "data", _contracts),
    route(
        "GET",
        r"^/v2/aggs/ticker/(?P<ticker>O:[A-Z]{1,6}\d{6}[CP]\d{8})/range/1/day"
        r"/(?P<from>[^/]+)/(?P<to>[^/]+)$",
        "data",
        _option_aggregates,
    ),
    route("GET", r"^/v2/snapshot/locale/us/markets/stocks/tickers$", "data", _tickers_snapshot),
    route("GET", r"^/v3/snapshot/indices$", "data", _indices_snapshot),
    route(
        "GET",
        r"^/v2/aggs/ticker/(?P<ticker>[^/]+)/range/(?P<multiplier>\d+)/(?P<timespan>[a-z]+)"
        r"/(?P<from>[^/]+)/(?P<to>[^/]+)$",
        "data",
        _aggregates,
    ),
]


def _paged_reply(request: Request, ctx: Context, results: list[dict], *, cap: int) -> Reply:
    """One page of `results` (10 by default, at most `cap`) with Polygon's `next_url` to the
    rest; the malformed fault corrupts rows of the page."""
    paged = _page(request, ctx, results, default_limit=10, cap=cap)
    if paged is None:
        return _error(400, "invalid cursor")
    page, next_url = paged
    if ctx.fault == "malformed":
        page = [dict(item) for item in page]
        malform(page, ctx.rng, ctx.row_fraction)
    payload: dict[str, Any] = {"status": "OK", "request_id": uuid.uuid4().hex, "results": page}
    if next_url:
        payload["next_url"] = next_url
    return json_reply(payload, cacheable=ctx.fault is None)
