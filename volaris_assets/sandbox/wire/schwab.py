"""Schwab Trader API wire format: OAuth token exchange, option chains, price history, quotes.

Token endpoint: Basic app_key:secret, `grant_type=refresh_token`; answers `{expires_in,
token_type, scope, refresh_token, access_token, id_token}`. A wrong refresh token gets 400
`{"error": "invalid_client"}` like a lapsed one does. Chains follow captured payloads (see
`providers/schwab.py`); missing greeks render as -999 or "NaN" as Schwab sends them. Error bodies
use the spec's `{"errors": [{id, status, title, detail}]}` shape (shape not confirmed by a capture).
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from typing import Any

import pandas as pd

from volaris_assets.calendar import NY
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
from volaris_assets.symbols import occ_symbol

NAME = "schwab"
_CHICAGO = "America/Chicago"
_FREQUENCIES = {("minute", "1"): "1m", ("minute", "5"): "5m", ("daily", "1"): "1d"}
_RIGHTS = {"ALL": None, "CALL": "C", "PUT": "P"}


@dataclass
class TokenIssuer:
    """Access tokens the sandbox has issued, with their (monotonic) expiry."""

    refresh_tokens: set[str]
    lifetime_s: float = 1800.0
    rotate_refresh_token: bool = False
    issued: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue(self) -> str:
        token = f"I0.sbx.{secrets.token_urlsafe(18)}@"
        with self.lock:
            self.issued[token] = time.monotonic() + self.lifetime_s
        return token

    def valid(self, token: str) -> bool:
        with self.lock:
            expiry = self.issued.get(token)
        return expiry is not None and time.monotonic() < expiry

    def revoke_all(self) -> None:
        with self.lock:
            self.issued.clear()


def error_body(status: int, title: str, detail: str) -> dict[str, Any]:
    return {
        "errors": [
            {"id": str(uuid.uuid4()), "status": str(status), "title": title, "detail": detail}
        ]
    }


def authorize(request: Request, ctx: Context) -> Reply | None:
    """Bearer token check for market-data paths (the token endpoint authenticates itself)."""
    if request.path == "/v1/oauth/token":
        return None
    header = request.headers.get("Authorization") or ""
    token = header[7:] if header.startswith("Bearer ") else ""
    if token and ctx.state.valid(token):
        return None
    return expired_reply()


def expired_reply() -> Reply:
    return json_reply(error_body(401, "Unauthorized", "Access token is invalid or expired"), 401)


def rate_limited_reply(retry_after_s: float) -> Reply:
    body = error_body(429, "Too Many Requests", "Request limit exceeded")
    return json_reply(body, 429, **{"Retry-After": retry_after_header(retry_after_s)})


def _token(request: Request, match: Any, ctx: Context) -> Reply:
    expected = base64.b64encode(f"{ctx.keys['app_key']}:{ctx.keys['secret']}".encode()).decode()
    if request.headers.get("Authorization") != f"Basic {expected}":
        return json_reply({"error": "invalid_client", "error_description": "Unauthorized"}, 401)
    issuer: TokenIssuer = ctx.state
    offered = request.form.get("refresh_token", "")
    if request.form.get("grant_type") != "refresh_token" or offered not in issuer.refresh_tokens:
        return json_reply(
            {"error": "invalid_client", "error_description": "refresh token invalid"}, 400
        )
    refresh = offered
    if issuer.rotate_refresh_token:
        refresh = f"sbx-refresh-{secrets.token_urlsafe(12)}"
        issuer.refresh_tokens.discard(offered)
        issuer.refresh_tokens.add(refresh)
    return json_reply(
        {
            "expires_in": int(issuer.lifetime_s) if issuer.lifetime_s >= 1 else issuer.lifetime_s,
            "token_type": "Bearer",
            "scope": "api",
            "refresh_token": refresh,
            "access_token": issuer.issue(),
            "id_token": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJzYW5kYm94In0.",
        }
    )


def _chain(request: Request, match: Any, ctx: Context) -> Reply:
    """`/chains` with the `contractType`, `fromDate` and `toDate` filters."""
    query = request.query
    try:
        wanted = chain_filter(
            _RIGHTS[query.get("contractType", "ALL").upper()],
            query.get("fromDate"),
            query.get("toDate"),
        )
    except (KeyError, ValueError):
        return json_reply(error_body(400, "Bad Request", "invalid chain parameters"), 400)
    raw_symbol = query.get("symbol", "")
    symbol = ctx.market.listed(raw_symbol, "schwab")
    chain = wanted.apply(ctx.market.chain(symbol)) if symbol else pd.DataFrame()
    chain = faulted_chain(chain, ctx.fault, ctx.rng, ctx.row_fraction) if symbol else chain
    spot = ctx.market.spot(symbol) if symbol else 0.0
    contracts: list[dict[str, Any]] = []
    payload = render_chain(raw_symbol, chain, spot, ctx, contracts)
    if ctx.fault == "malformed":
        malform(contracts, ctx.rng, ctx.row_fraction)
    return json_reply(payload, cacheable=ctx.fault is None)


def render_chain(
    raw_symbol: str, chain: pd.DataFrame, spot: float, ctx: Context, out: list[dict[str, Any]]
) -> dict[str, Any]:
    """The `/chains` payload for a canonical chain; contract dicts are also appended to `out`."""
    as_of_ms = int(ctx.market.as_of.timestamp() * 1000)
    maps: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {"C": {}, "P": {}}
    for row in chain.to_dict("records"):
        contract = _contract(row, as_of_ms, ctx)
        exp_key = f"{row['expiration']:%Y-%m-%d}:{int(row['dte'])}"
        strike_key = str(float(row["strike"]))
        maps[row["right"]].setdefault(exp_key, {}).setdefault(strike_key, []).append(contract)
        out.append(contract)
    status = "SUCCESS" if len(chain) else "FAILED"
    return {
        "symbol": raw_symbol,
        "status": status,
        "underlying": _underlying(raw_symbol, spot, as_of_ms) if len(chain) else None,
        "strategy": "SINGLE",
        "interval": 0.0,
        "isDelayed": False,
        "isIndex": False,
        "interestRate": 4.0,
        "underlyingPrice": round(spot, 4),
        "volatility": 29.0,
        "daysToExpiration": 0.0,
        "numberOfContracts": len(chain),
        "assetMainType": "EQUITY",
        "assetSubType": "COE",
        "isChainTruncated": False,
        "callExpDateMap": maps["C"],
        "putExpDateMap": maps["P"],
    }


def _underlying(symbol: str, spot: float, as_of_ms: int) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "description": f"{symbol} SANDBOX",
        "exchangeName": "NASDAQ",
        "last": round(spot, 4),
        "mark": round(spot, 4),
        "bid": round(spot - 0.01, 4),
        "ask": round(spot + 0.01, 4),
        "quoteTime": as_of_ms,
        "tradeTime": as_of_ms,
        "delayed": False,
    }


def _missing(ctx: Context) -> float | str:
    """Schwab spells "no model value" two ways."""
    return -999.0 if ctx.rng.random() < 0.5 else "NaN"


def _contract(row: dict[str, Any], as_of_ms: int, ctx: Context) -> dict[str, Any]:
    expiration: date = row["expiration"]
    expiry = datetime.combine(expiration, clock(16, 0), NY).astimezone(UTC)
    right = row["right"]
    strike = float(row["strike"])
    mark = num(row["mark_price"], 4)
    iv = num(row["implied_volatility"])
    intrinsic = max(0.0, (row["underlying_price"] - strike) * (1 if right == "C" else -1))
    greek = {g: num(row[g], 3) for g in ("delta", "gamma", "theta", "vega")}
    root = row["symbol"].replace(".", "")
    return {
        "putCall": "CALL" if right == "C" else "PUT",
        "symbol": occ_symbol(row["symbol"], expiration, right, strike),
        "description": f"{root} {expiration:%m/%d/%Y} {strike:.2f} {right}",
        "exchangeName": "OPR",
        "bid": num(row["bid"], 4),
        "ask": num(row["ask"], 4),
        "last": num(row["last"], 4),
        "mark": mark,
        "bidSize": 10,
        "askSize": 10,
        "bidAskSize": "10X10",
        "lastSize": 1,
        "totalVolume": whole(row["volume"]),
        "tradeTimeInLong": as_of_ms,
        "quoteTimeInLong": int(pd.Timestamp(row["quote_ts"]).timestamp() * 1000),
        "volatility": _missing(ctx) if iv is None else round(iv * 100.0, 3),
        **{g: _missing(ctx) if v is None else v for g, v in greek.items()},
        "rho": 0.0,
        "openInterest": whole(row["open_interest"]),
        "timeValue": None if mark is None else round(mark - intrinsic, 4),
        "theoreticalOptionValue": mark,
        "theoreticalVolatility": 29.0,
        "optionDeliverablesList": [
            {"symbol": row["symbol"], "assetType": "STOCK", "deliverableUnits": 100.0}
        ],
        "strikePrice": strike,
        "expirationDate": expiry.strftime("%Y-%m-%dT%H:%M:%S.000+00:00"),
        "daysToExpiration": int(row["dte"]),
        "expirationType": "S" if 15 <= expiration.day <= 21 else "W",
        "lastTradingDay": int(expiry.timestamp() * 1000),
        "multiplier": 100.0,
        "settlementType": "P",
        "deliverableNote": f"100 {row['symbol']}",
        "intrinsicValue": round(intrinsic, 4),
        "optionRoot": root,
        "exerciseType": "A",
        "nonStandard": False,
        "pennyPilot": True,
        "inTheMoney": intrinsic > 0,
        "mini": False,
    }


def _price_history(request: Request, match: Any, ctx: Context) -> Reply:
    query = request.query
    timeframe = _FREQUENCIES.get((query.get("frequencyType", ""), query.get("frequency", "1")))
    if timeframe is None:
        return json_reply(error_body(400, "Bad Request", "Invalid frequency combination"), 400)
    raw_symbol = query.get("symbol", "")
    symbol = ctx.market.listed(raw_symbol, "schwab")
    end = _ms(query.get("endDate")) or ctx.market.as_of
    start = _ms(query.get("startDate")) or end - timedelta(days=10 if timeframe != "1d" else 365)
    bars = ctx.market.bars(symbol, timeframe, start, end) if symbol else pd.DataFrame()
    candles = []
    for row in bars.to_dict("records"):
        ts = pd.Timestamp(row["ts"])
        if timeframe == "1d":  # Schwab stamps a daily candle at midnight Central
            ts = pd.Timestamp(ts.date()).tz_localize(_CHICAGO)
        candles.append(
            {
                "open": num(row["open"]),
                "high": num(row["high"]),
                "low": num(row["low"]),
                "close": num(row["close"]),
                "volume": whole(row["volume"]),
                "datetime": int(ts.timestamp() * 1000),
            }
        )
    if ctx.fault == "malformed":
        malform(candles, ctx.rng, ctx.row_fraction)
    payload = {"symbol": raw_symbol, "empty": not candles, "candles": candles}
    return json_reply(payload, cacheable=ctx.fault is None)


def _quotes(request: Request, match: Any, ctx: Context) -> Reply:
    """`/quotes?symbols=A,B`: an object keyed by each requested symbol as spelled; symbols it
    does not know are listed under `errors.invalidSymbols` (the shape reported for the real
    API, not confirmed by a capture)."""
    raw_symbols = requested(request.query.get("symbols", ""))
    if not raw_symbols:
        return json_reply(error_body(400, "Bad Request", "symbols is required"), 400)
    found = listed_quotes(raw_symbols, ctx, "schwab")
    # The malformed fault corrupts what a client reads first (the price and its times) rather
    # than one of the sizes and changes around them.
    trades = [_trade_fields(quote) for _, quote in found]
    if ctx.fault == "malformed":
        malform(trades, ctx.rng, ctx.row_fraction)
    blocks = [{**_quote_block(q), **t} for (_, q), t in zip(found, trades, strict=True)]
    payload: dict[str, Any] = {
        raw: {
            "assetMainType": "EQUITY",
            "assetSubType": "COE",
            "quoteType": "NBBO",
            "realtime": True,
            "ssid": 1000 + index,
            "symbol": raw,
            "quote": block,
            "reference": {"description": f"{raw} SANDBOX", "exchangeName": "NASDAQ"},
        }
        for index, ((raw, _), block) in enumerate(zip(found, blocks, strict=True))
    }
    unknown = [raw for raw in raw_symbols if raw not in payload]
    if unknown:
        payload["errors"] = {"invalidSymbols": unknown}
    return json_reply(payload, cacheable=ctx.fault is None)


def _trade_fields(quote: SimulatedQuote) -> dict[str, Any]:
    stamp = epoch_ms(quote)
    return {"lastPrice": quote.last, "quoteTime": stamp, "tradeTime": stamp}


def _quote_block(quote: SimulatedQuote) -> dict[str, Any]:
    """The `quote` block but for `_trade_fields` (merged over it)."""
    change = quote.last - quote.prev_close
    return {
        "askPrice": quote.ask,
        "askSize": 3,
        "bidPrice": quote.bid,
        "bidSize": 2,
        "closePrice": quote.prev_close,
        "lastSize": 100,
        "mark": quote.last,
        "netChange": round(change, 4),
        "netPercentChange": round(100.0 * change / quote.prev_close, 4),
        "securityStatus": "Normal",
        "totalVolume": quote.volume,
    }


def _ms(value: str | None) -> datetime | None:
    if not value or not value.isdigit():
        return None
    return datetime.fromtimestamp(int(value) / 1000, UTC)


ROUTES = [
    route("POST", r"^/v1/oauth/token$", "auth", _token),
    route("GET", r"^/marketdata/v1/chains$", "chain", _chain),
    route("GET", r"^/marketdata/v1/pricehistory$", "data", _price_history),
    route("GET", r"^/marketdata/v1/quotes$", "data", _quotes),
]
