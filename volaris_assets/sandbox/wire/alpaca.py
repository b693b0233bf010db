"""Alpaca Market Data v2 wire format: multi-symbol stock bars with `page_token` pagination, and
multi-symbol snapshots (latest trade and quote, daily and previous daily bar).

`limit` caps bars per page across all symbols (as on the real API), so one symbol's bars span
pages; a page with no bars says `"bars": null`.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pandas as pd

from volaris_assets.providers.simulated import SimulatedQuote
from volaris_assets.sandbox.market import malform
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
from volaris_assets.sandbox.quotes import listed_quotes, requested

NAME = "alpaca"
MAX_LIMIT = 10000
_TIMEFRAMES = {"1Min": "1m", "5Min": "5m", "1Day": "1d", "1D": "1d"}


def authorize(request: Request, ctx: Context) -> Reply | None:
    key_id = request.headers.get("APCA-API-KEY-ID")
    secret = request.headers.get("APCA-API-SECRET-KEY")
    if key_id == ctx.keys["key_id"] and secret == ctx.keys["secret"]:
        return None
    return json_reply({"code": 40110000, "message": "request is not authorized"}, 401)


def rate_limited_reply(retry_after_s: float) -> Reply:
    return json_reply(
        {"code": 42910000, "message": "too many requests"},
        429,
        **{"Retry-After": retry_after_header(retry_after_s)},
    )


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return pd.Timestamp(text).tz_convert("UTC").to_pydatetime()
    except (ValueError, TypeError):
        return None


def _bars(request: Request, match: Any, ctx: Context) -> Reply:
    query = request.query
    timeframe = _TIMEFRAMES.get(query.get("timeframe", ""))
    start, end = _moment(query.get("start")), _moment(query.get("end"))
    if timeframe is None or start is None:
        return json_reply({"code": 40010001, "message": "invalid timeframe or start"}, 400)
    end = end or ctx.market.as_of
    items: list[tuple[str, dict[str, Any]]] = []
    for raw in filter(None, query.get("symbols", "").split(",")):
        symbol = ctx.market.listed(raw)
        if symbol is None:
            continue
        bars = ctx.market.bars(symbol, timeframe, start, end + pd.Timedelta(microseconds=1))
        items += [(raw, _bar(row, timeframe)) for row in bars.to_dict("records")]
    try:
        offset = (
            int(base64.urlsafe_b64decode(query["page_token"]).decode())
            if "page_token" in query
            else 0
        )
        limit = int(query.get("limit", 1000))
    except ValueError:
        return json_reply({"code": 40010001, "message": "invalid page_token or limit"}, 400)
    size = max(1, min(limit, MAX_LIMIT, ctx.page_size))
    page = items[offset : offset + size]
    if ctx.fault == "malformed":
        page = [(raw, dict(bar)) for raw, bar in page]
        malform([bar for _, bar in page], ctx.rng, ctx.row_fraction)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for raw, bar in page:
        grouped.setdefault(raw, []).append(bar)
    more = offset + size < len(items)
    token = base64.urlsafe_b64encode(str(offset + size).encode()).decode() if more else None
    return json_reply(
        {"bars": grouped or None, "next_page_token": token}, cacheable=ctx.fault is None
    )


def _bar(row: dict[str, Any], timeframe: str) -> dict[str, Any]:
    ts = pd.Timestamp(row["ts"])
    if timeframe == "1d":  # Alpaca stamps daily bars at midnight New York
        ts = pd.Timestamp(ts.date()).tz_localize("America/New_York").tz_convert("UTC")
    return {
        "t": f"{ts:%Y-%m-%dT%H:%M:%S}Z",
        "o": num(row["open"]),
        "h": num(row["high"]),
        "l": num(row["low"]),
        "c": num(row["close"]),
        "v": whole(row["volume"]),
        "n": 1,
        "vw": num((row["high"] + row["low"] + row["close"]) / 3, 4),
    }


def _snapshots(request: Request, match: Any, ctx: Context) -> Reply:
    """`/v2/stocks/snapshots?symbols=A,B`: a map symbol -> snapshot; unknown symbols are left
    out."""
    raw_symbols = requested(request.query.get("symbols", ""))
    if not raw_symbols:
        return json_reply({"code": 40010001, "message": "symbols is required"}, 400)
    found = listed_quotes(raw_symbols, ctx)
    trades = [_trade(quote) for _, quote in found]
    if ctx.fault == "malformed":
        malform(trades, ctx.rng, ctx.row_fraction)
    return json_reply(
        {raw: _snapshot(quote, trade) for (raw, quote), trade in zip(found, trades, strict=True)},
        cacheable=ctx.fault is None,
    )


def _rfc3339(moment: datetime) -> str:
    return f"{pd.Timestamp(moment).tz_convert('UTC'):%Y-%m-%dT%H:%M:%S.%f}Z"


def _trade(quote: SimulatedQuote) -> dict[str, Any]:
    return {"t": _rfc3339(quote.quote_ts), "x": "V", "p": quote.last, "s": 100, "i": 1}


def _snapshot(quote: SimulatedQuote, trade: dict[str, Any]) -> dict[str, Any]:
    stamp = _rfc3339(quote.quote_ts)
    return {
        "latestTrade": trade,
        "latestQuote": {
            "t": stamp,
            "ax": "V",
            "ap": quote.ask,
            "as": 3,
            "bx": "V",
            "bp": quote.bid,
            "bs": 2,
            "c": ["R"],
        },
        "dailyBar": {"t": stamp, "c": quote.last, "v": quote.volume},
        "prevDailyBar": {"c": quote.prev_close},
    }


ROUTES = [
    route("GET", r"^/v2/stocks/bars$", "data", _bars),
    route("GET", r"^/v2/stocks/snapshots$", "data", _snapshots),
]
