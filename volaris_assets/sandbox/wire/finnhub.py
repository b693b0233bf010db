"""Finnhub wire format: `/quote` and `/stock/profile2`.

Keys are accepted as `X-Finnhub-Token` or `token=`. An unknown symbol gets zeros from `/quote`
and `{}` from `/stock/profile2`, as on the real API.
"""

from __future__ import annotations

import hashlib
from typing import Any

from volaris_assets.sandbox.protocol import (
    Context,
    Reply,
    Request,
    json_reply,
    retry_after_header,
    route,
)

NAME = "finnhub"
INDUSTRIES = (
    "Technology",
    "Banking",
    "Pharmaceuticals",
    "Retail",
    "Semiconductors",
    "Utilities",
    "Energy",
    "Media",
)


def authorize(request: Request, ctx: Context) -> Reply | None:
    offered = request.headers.get("X-Finnhub-Token") or request.query.get("token", "")
    if offered == ctx.keys["api_key"]:
        return None
    return json_reply({"error": "Invalid API key"}, 401)


def rate_limited_reply(retry_after_s: float) -> Reply:
    return json_reply(
        {"error": "API limit reached. Please try again later. Remaining Limit: 0"},
        429,
        **{"Retry-After": retry_after_header(retry_after_s)},
    )


def _quote(request: Request, match: Any, ctx: Context) -> Reply:
    symbol = ctx.market.listed(request.query.get("symbol", ""))
    if symbol is None:
        return json_reply({"c": 0, "d": None, "dp": None, "h": 0, "l": 0, "o": 0, "pc": 0, "t": 0})
    price = round(ctx.market.spot(symbol), 4)
    previous = round(price * 0.99, 4)
    payload = {
        "c": price,
        "d": round(price - previous, 4),
        "dp": round((price / previous - 1) * 100, 4),
        "h": price,
        "l": previous,
        "o": previous,
        "pc": previous,
        "t": int(ctx.market.as_of.timestamp()),
    }
    return json_reply(payload, cacheable=True)


def industry(symbol: str) -> str:
    """The sandbox's deterministic `finnhubIndustry` for a symbol."""
    digest = hashlib.blake2b(symbol.encode(), digest_size=2).digest()
    return INDUSTRIES[int.from_bytes(digest, "little") % len(INDUSTRIES)]


def _profile(request: Request, match: Any, ctx: Context) -> Reply:
    raw = request.query.get("symbol", "")
    symbol = ctx.market.listed(raw)
    if symbol is None:
        return json_reply({})
    payload = {
        "country": "US",
        "currency": "USD",
        "estimateCurrency": "USD",
        "exchange": "NASDAQ NMS - GLOBAL MARKET",
        "finnhubIndustry": industry(symbol),
        "ipo": "1990-01-02",
        "logo": "",
        "marketCapitalization": 1000.0,
        "name": f"{symbol} Sandbox Inc",
        "phone": "",
        "shareOutstanding": 100.0,
        "ticker": raw,
        "weburl": "",
    }
    return json_reply(payload, cacheable=True)


ROUTES = [
    route("GET", r"^/quote$", "data", _quote),
    route("GET", r"^/stock/profile2$", "data", _profile),
]
