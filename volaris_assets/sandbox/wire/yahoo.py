"""Yahoo Finance wire format: cookie + crumb, `/v7/finance/options`, `/v8/finance/chart`.

The cookie host (fc.yahoo.com in real life) is served at `/fc` and answers 404 with a cookie;
`/v1/test/getcrumb` returns a crumb for that cookie; the options endpoint refuses a missing or
wrong crumb with 401 "Invalid Crumb". Without `date` the options endpoint returns the nearest
expiration and lists all of them in `expirationDates` (epoch s at 00:00 UTC).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from http.cookies import SimpleCookie
from typing import Any

import pandas as pd

from volaris_assets import calendar
from volaris_assets.sandbox.market import faulted_chain, malform
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
from volaris_assets.symbols import occ_symbol

NAME = "yahoo"
_INTERVALS = {"1m": "1m", "5m": "5m", "1d": "1d"}


@dataclass
class CrumbJar:
    """Cookies the sandbox handed out and the crumb bound to each."""

    crumbs: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cookie_for(self) -> str:
        cookie = secrets.token_hex(12)
        with self.lock:
            self.crumbs[cookie] = secrets.token_urlsafe(8)
        return cookie

    def crumb(self, cookie: str | None) -> str | None:
        with self.lock:
            return self.crumbs.get(cookie or "")


def _cookie(request: Request) -> str | None:
    jar = SimpleCookie()
    jar.load(request.headers.get("Cookie") or "")
    return jar["A3"].value if "A3" in jar else None


def authorize(request: Request, ctx: Context) -> Reply | None:
    """Only the options endpoint wants a crumb (bound to the caller's cookie)."""
    if not request.path.startswith("/v7/finance/options/"):
        return None
    expected = ctx.state.crumb(_cookie(request))
    if expected is not None and request.query.get("crumb") == expected:
        return None
    return expired_reply()


def expired_reply() -> Reply:
    error = {"code": "Unauthorized", "description": "Invalid Crumb"}
    return json_reply({"finance": {"result": None, "error": error}}, 401)


def rate_limited_reply(retry_after_s: float) -> Reply:
    return Reply(
        429,
        b"Too Many Requests\r\n",
        content_type="text/plain",
        headers={"Retry-After": retry_after_header(retry_after_s)},
    )


def _fc(request: Request, match: Any, ctx: Context) -> Reply:
    cookie = ctx.state.cookie_for()
    return Reply(
        404,
        b"<html><body>Not Found</body></html>",
        content_type="text/html",
        headers={"Set-Cookie": f"A3={cookie}; Path=/; HttpOnly"},
    )


def _getcrumb(request: Request, match: Any, ctx: Context) -> Reply:
    crumb = ctx.state.crumb(_cookie(request))
    if crumb is None:
        return Reply(403, b"", content_type="text/plain")
    return Reply(200, crumb.encode(), content_type="text/plain")


def _epoch(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _options(request: Request, match: Any, ctx: Context) -> Reply:
    ticker = match["ticker"]
    symbol = ctx.market.listed(ticker, "yahoo")
    if symbol is None:
        return json_reply({"optionChain": {"result": [], "error": None}})
    chain = faulted_chain(ctx.market.chain(symbol), ctx.fault, ctx.rng, ctx.row_fraction)
    expirations = sorted(set(chain["expiration"]))
    wanted = request.query.get("date")
    chosen = next((e for e in expirations if str(_epoch(e)) == wanted), None)
    if wanted is None and expirations:
        chosen = expirations[0]
    rows = chain[chain["expiration"] == chosen] if chosen else chain.iloc[0:0]
    calls = [_contract(r) for r in rows[rows["right"] == "C"].to_dict("records")]
    puts = [_contract(r) for r in rows[rows["right"] == "P"].to_dict("records")]
    if ctx.fault == "malformed":
        malform(calls + puts, ctx.rng, ctx.row_fraction)
    as_of = int(ctx.market.as_of.timestamp())
    result = {
        "underlyingSymbol": ticker,
        "expirationDates": [_epoch(e) for e in expirations],
        "strikes": sorted({float(s) for s in chain["strike"]}),
        "hasMiniOptions": False,
        "quote": {
            "symbol": ticker,
            "quoteType": "EQUITY",
            "currency": "USD",
            "regularMarketPrice": round(ctx.market.spot(symbol), 4),
            "regularMarketTime": as_of,
        },
        "options": (
            [
                {
                    "expirationDate": _epoch(chosen),
                    "hasMiniOptions": False,
                    "calls": calls,
                    "puts": puts,
                }
            ]
            if chosen
            else []
        ),
    }
    return json_reply(
        {"optionChain": {"result": [result], "error": None}}, cacheable=ctx.fault is None
    )


def _contract(row: dict[str, Any]) -> dict[str, Any]:
    strike = float(row["strike"])
    as_of = int(pd.Timestamp(row["quote_ts"]).timestamp())
    itm = (row["underlying_price"] - strike) * (1 if row["right"] == "C" else -1) > 0
    contract = {
        "contractSymbol": occ_symbol(
            row["symbol"], row["expiration"], row["right"], strike
        ).replace(" ", ""),
        "strike": strike,
        "currency": "USD",
        "lastPrice": num(row["last"]),
        "change": 0.0,
        "percentChange": 0.0,
        "volume": whole(row["volume"]),
        "openInterest": whole(row["open_interest"]),
        "bid": num(row["bid"]),
        "ask": num(row["ask"]),
        "contractSize": "REGULAR",
        "expiration": _epoch(row["expiration"]),
        "lastTradeDate": as_of,
        "impliedVolatility": num(row["implied_volatility"], 6),
        "inTheMoney": bool(itm),
    }
    return {k: v for k, v in contract.items() if v is not None}  # Yahoo drops absent fields


def _chart(request: Request, match: Any, ctx: Context) -> Reply:
    ticker = match["ticker"]
    symbol = ctx.market.listed(ticker, "yahoo")
    timeframe = _INTERVALS.get(request.query.get("interval", "1d"))
    if symbol is None or timeframe is None:
        error = {"code": "Not Found", "description": "No data found, symbol may be delisted"}
        return json_reply({"chart": {"result": None, "error": error}}, 404)
    try:
        start = datetime.fromtimestamp(int(request.query["period1"]), UTC)
        end = datetime.fromtimestamp(int(request.query["period2"]), UTC)
    except (KeyError, ValueError):
        error = {"code": "Bad Request", "description": "period1 and period2 are required"}
        return json_reply({"chart": {"result": None, "error": error}}, 400)
    bars = ctx.market.bars(symbol, timeframe, start, end)
    stamps = [_stamp(pd.Timestamp(ts), timeframe) for ts in bars["ts"]] if len(bars) else []
    columns = {
        c: [num(v) if c != "volume" else whole(v) for v in bars[c]] if len(bars) else []
        for c in ("open", "high", "low", "close", "volume")
    }
    if ctx.fault == "malformed" and stamps:
        for index in ctx.rng.sample(range(len(stamps)), max(1, len(stamps) // 5)):
            columns["close"][index] = "n/a"
    meta = {
        "currency": "USD",
        "symbol": ticker,
        "exchangeName": "NMS",
        "dataGranularity": timeframe,
    }
    result = {"meta": meta, "timestamp": stamps, "indicators": {"quote": [columns]}}
    return json_reply({"chart": {"result": [result], "error": None}}, cacheable=ctx.fault is None)


def _stamp(ts: pd.Timestamp, timeframe: str) -> int:
    if timeframe == "1d":  # Yahoo stamps a daily bar at the session's open
        return int(calendar.session(ts.date()).open.timestamp())
    return int(ts.timestamp())


ROUTES = [
    route("GET", r"^/fc$", "auth", _fc),
    route("GET", r"^/v1/test/getcrumb$", "auth", _getcrumb),
    route("GET", r"^/v7/finance/options/(?P<ticker>[^/]+)$", "chain", _options),
    route("GET", r"^/v8/finance/chart/(?P<ticker>[^/]+)$", "data", _chart),
]
