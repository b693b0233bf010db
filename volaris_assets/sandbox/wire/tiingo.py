"""Tiingo wire format: EOD daily prices and IEX intraday prices (JSON arrays).

Keys are accepted as `Authorization: Token <key>` or `token=`; errors are `{"detail": ...}`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

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

NAME = "tiingo"
_RESAMPLE = {"1min": "1m", "5min": "5m"}


def authorize(request: Request, ctx: Context) -> Reply | None:
    header = request.headers.get("Authorization") or ""
    offered = header[6:] if header.startswith("Token ") else request.query.get("token", "")
    if offered == ctx.keys["api_key"]:
        return None
    return json_reply({"detail": "Invalid token."}, 401)


def rate_limited_reply(retry_after_s: float) -> Reply:
    detail = (
        "Error: You have run over your hourly request allocation. Please upgrade at "
        "https://api.tiingo.com/pricing to have your limits increased."
    )
    return json_reply({"detail": detail}, 429, **{"Retry-After": retry_after_header(retry_after_s)})


def _window(request: Request, ctx: Context) -> tuple[datetime, datetime] | None:
    try:
        start = datetime.strptime(request.query["startDate"], "%Y-%m-%d").replace(tzinfo=UTC)
        last = datetime.strptime(request.query.get("endDate", ""), "%Y-%m-%d").replace(tzinfo=UTC)
    except (KeyError, ValueError):
        return None
    return start, last + timedelta(days=1)


def _prices(request: Request, ticker: str, timeframe: str | None, ctx: Context) -> Reply:
    symbol = ctx.market.listed(ticker)
    if symbol is None:
        return json_reply({"detail": f"Error: Ticker '{ticker}' not found"}, 404)
    window = _window(request, ctx)
    if window is None or timeframe is None:
        return json_reply(
            {"detail": "Error: startDate, endDate and resampleFreq are required"}, 400
        )
    bars = ctx.market.bars(symbol, timeframe, *window)
    with_volume = timeframe == "1d" or "volume" in request.query.get("columns", "")
    rows = [_row(row, timeframe, with_volume) for row in bars.to_dict("records")]
    if ctx.fault == "malformed":
        malform(rows, ctx.rng, ctx.row_fraction)
    return json_reply(rows, cacheable=ctx.fault is None)


def _row(row: dict[str, Any], timeframe: str, with_volume: bool) -> dict[str, Any]:
    ts = pd.Timestamp(row["ts"])
    out: dict[str, Any] = {
        "date": f"{ts:%Y-%m-%d}T00:00:00+00:00"
        if timeframe == "1d"
        else f"{ts:%Y-%m-%dT%H:%M:%S}.000Z",
        "open": num(row["open"]),
        "high": num(row["high"]),
        "low": num(row["low"]),
        "close": num(row["close"]),
    }
    if with_volume:
        out["volume"] = whole(row["volume"])
    if timeframe == "1d":
        out.update(
            adjOpen=out["open"],
            adjHigh=out["high"],
            adjLow=out["low"],
            adjClose=out["close"],
            adjVolume=out["volume"],
            divCash=0.0,
            splitFactor=1.0,
        )
    return out


def _daily(request: Request, match: Any, ctx: Context) -> Reply:
    return _prices(request, match["ticker"], "1d", ctx)


def _iex(request: Request, match: Any, ctx: Context) -> Reply:
    return _prices(
        request, match["ticker"], _RESAMPLE.get(request.query.get("resampleFreq", "")), ctx
    )


ROUTES = [
    route("GET", r"^/tiingo/daily/(?P<ticker>[^/]+)/prices$", "data", _daily),
    route("GET", r"^/iex/(?P<ticker>[^/]+)/prices$", "data", _iex),
]
