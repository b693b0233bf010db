"""Robinhood wire format (unofficial API, no official document): the OAuth password login with
a device token and a TOTP code, equity instrument lookup, option chains, paginated option
instruments, option market data in batches, and stock quotes.

Payload shapes follow robin_stocks 3.4.0 and the payloads captured in
CIInc/robinhood-options-mobile (see `providers/robinhood.py`). What neither shows is the
sandbox's choice, made in the manner of Django REST framework, whose `{next, previous, results}`
pages and `{"detail": ...}` errors the API answers with (unconfirmed, not captures):
- wrong user name or password: 400 `{"detail": "Unable to log in with provided credentials."}`;
- a device token the account has not approved: 403 `{"verification_workflow": {id,
  workflow_status}}` (the device-approval flow a person finishes in the app);
- an account with an authenticator app, no `mfa_code`: 400 `{"mfa_required": true, "mfa_type":
  "app"}`; a wrong code: the same with `"detail": "Please enter a valid code."` (a code of the
  step before or after is accepted, as RFC 6238 suggests for clock drift);
- a missing, unknown or expired bearer token: 401 `{"detail": "Incorrect authentication
  credentials."}`; throttled: 429 `{"detail": "Request was throttled. Expected available in N
  seconds."}` with `Retry-After`;
- more than 25 ids in one market-data request: 400 (25 is the mobile app's batch; Robinhood's
  own cap is unknown). An unknown id answers `null` in its place, as Robinhood's batch
  endpoints do for an unknown symbol;
- instrument listings are pages of `PAGE_SIZE` (unknown on the real API; tests make it small).
Ids are UUIDs derived from names (chain from symbol, option instrument from OCC symbol). The
account state remembers the ids it handed out, so the chain and market-data endpoints can find
their contracts; replies that hand out or look up ids are rendered for each request, never
cached, and the market-data endpoint records each request's batch size for tests to check.
"""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode

import pandas as pd

from volaris_assets.providers import robinhood as client
from volaris_assets.providers.simulated import SimulatedQuote
from volaris_assets.sandbox.market import faulted_chain, malform
from volaris_assets.sandbox.protocol import (
    Context,
    Reply,
    Request,
    json_reply,
    retry_after_header,
    route,
    whole,
)
from volaris_assets.sandbox.quotes import listed_quotes, requested
from volaris_assets.sandbox.wire.schwab import TokenIssuer
from volaris_assets.symbols import INDEX_SYMBOLS

NAME = client.NAME
PAGE_SIZE = 100
MAX_IDS = client.MARKET_DATA_BATCH
_IDS = uuid.UUID("6f1c2a57-5d0e-4b8e-9a39-0c3f8e5b7a21")  # namespace of the sandbox's ids
_TYPES = {"": None, "call": "C", "put": "P"}


@dataclass
class RobinhoodAccount(TokenIssuer):
    """The sandbox's Robinhood account: the tokens it issued (a `TokenIssuer` whose refresh
    tokens come from logins and whose access tokens live a day, what robin_stocks asks for;
    tests shorten it), the TOTP secret it requires (None: no MFA), the ids it handed out, and
    what clients asked of it (successful grants by type, market-data batch sizes)."""

    lifetime_s: float = float(client.TOKEN_LIFETIME_S)
    mfa_secret: str | None = None
    chains: dict[str, str] = field(default_factory=dict)  # chain id -> symbol
    options: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (symbol, OCC)
    grants: Counter[str] = field(default_factory=Counter)
    batch_sizes: list[int] = field(default_factory=list)


def _detail(status: int, message: str) -> Reply:
    return json_reply({"detail": message}, status)


def authorize(request: Request, ctx: Context) -> Reply | None:
    """Bearer token check for every path but the token endpoint."""
    if request.path == client.TOKEN_PATH:
        return None
    header = request.headers.get("Authorization") or ""
    token = header[7:] if header.startswith("Bearer ") else ""
    return None if token and ctx.state.valid(token) else expired_reply()


def expired_reply() -> Reply:
    return _detail(401, "Incorrect authentication credentials.")


def rate_limited_reply(retry_after_s: float) -> Reply:
    wait = retry_after_header(retry_after_s)
    reply = _detail(429, f"Request was throttled. Expected available in {wait} seconds.")
    reply.headers["Retry-After"] = wait
    return reply


# ---- login ---------------------------------------------------------------------------------


def _token(request: Request, match: Any, ctx: Context) -> Reply:
    form, account = request.form, ctx.state
    if form.get("client_id") != client.CLIENT_ID:
        return json_reply({"error": "invalid_client"}, 401)
    if form.get("grant_type") == "refresh_token":
        return _refresh(request, ctx)
    if form.get("grant_type") != "password":
        return json_reply({"error": "unsupported_grant_type"}, 400)
    if (form.get("username"), form.get("password")) != (ctx.keys["username"], ctx.keys["password"]):
        return _detail(400, "Unable to log in with provided credentials.")
    if form.get("device_token") != ctx.keys["device_token"]:
        workflow = {"id": str(uuid.uuid4()), "workflow_status": "workflow_status_internal_pending"}
        return json_reply({"verification_workflow": workflow}, 403)
    challenge = {"mfa_required": True, "mfa_type": "app"}
    if account.mfa_secret and not form.get("mfa_code"):
        return json_reply(challenge, 400)
    if account.mfa_secret and form.get("mfa_code") not in _valid_codes(account.mfa_secret):
        return json_reply({**challenge, "detail": "Please enter a valid code."}, 400)
    refresh = f"sbx-rh-refresh-{secrets.token_urlsafe(18)}"
    with account.lock:
        account.refresh_tokens.add(refresh)
    return _granted(account, "password", refresh)


def _valid_codes(secret: str) -> set[str]:
    """The codes of this step and the ones either side of it."""
    key, now = client.mfa_key(secret), time.time()
    return {client.totp(key, now + drift * client.TOTP_STEP_S) for drift in (-1, 0, 1)}


def _refresh(request: Request, ctx: Context) -> Reply:
    form, account = request.form, ctx.state
    offered = form.get("refresh_token", "")
    with account.lock:
        known = offered in account.refresh_tokens
    if not known or form.get("device_token") != ctx.keys["device_token"]:
        return json_reply({"error": "invalid_grant"}, 400)
    refresh = offered
    if account.rotate_refresh_token:
        refresh = f"sbx-rh-refresh-{secrets.token_urlsafe(18)}"
        with account.lock:
            account.refresh_tokens.discard(offered)
            account.refresh_tokens.add(refresh)
    return _granted(account, "refresh_token", refresh)


def _granted(account: RobinhoodAccount, grant: str, refresh: str) -> Reply:
    with account.lock:
        account.grants[grant] += 1
    lifetime = account.lifetime_s
    return json_reply(
        {
            "access_token": account.issue(),
            "expires_in": int(lifetime) if lifetime >= 1 else lifetime,
            "token_type": "Bearer",
            "scope": "internal",
            "refresh_token": refresh,
            "mfa_code": None,
            "backup_code": None,
        }
    )


# ---- instruments and chains ----------------------------------------------------------------


def _id(kind: str, name: str) -> str:
    return str(uuid.uuid5(_IDS, f"{kind}:{name}"))


def _instruments(request: Request, match: Any, ctx: Context) -> Reply:
    """`/instruments/?symbol=X`: the equity instrument, with the id of its option chain. An
    index is no equity instrument (Robinhood lists those elsewhere): none."""
    raw = request.query.get("symbol", "")
    symbol = ctx.market.listed(raw, NAME)
    results = []
    if symbol is not None and symbol not in INDEX_SYMBOLS:
        chain_id = _id("chain", symbol)
        with ctx.state.lock:
            ctx.state.chains[chain_id] = symbol
        equity_id = _id("instrument", symbol)
        results.append(
            {
                "id": equity_id,
                "url": f"{request.base_url}/instruments/{equity_id}/",
                "quote": f"{request.base_url}/quotes/{symbol}/",
                "symbol": symbol,
                "simple_name": f"{symbol} Sandbox",
                "name": f"{symbol} Sandbox Inc. Common Stock",
                "type": "stock",
                "state": "active",
                "country": "US",
                "tradeable": True,
                "tradability": "tradable",
                "tradable_chain_id": chain_id,
                "day_trade_ratio": "0.2500",
            }
        )
    return json_reply({"next": None, "previous": None, "results": results})


def _chain(request: Request, match: Any, ctx: Context) -> Reply:
    """`/options/chains/{id}/`: the chain's symbol and expiration dates."""
    chain_id = match["chain_id"]
    symbol = ctx.state.chains.get(chain_id)
    if symbol is None:
        return _detail(404, "Not found.")
    expirations = sorted(set(ctx.market.chain(symbol)["expiration"]))
    equity_id = _id("instrument", symbol)
    return json_reply(
        {
            "id": chain_id,
            "symbol": symbol,
            "can_open_position": True,
            "cash_component": None,
            "expiration_dates": [f"{day:%Y-%m-%d}" for day in expirations],
            "trade_value_multiplier": "100.0000",
            "underlying_instruments": [
                {
                    "id": _id("underlying", symbol),
                    "instrument": f"{request.base_url}/instruments/{equity_id}/",
                    "quantity": 100,
                }
            ],
            "min_ticks": {"above_tick": "0.05", "below_tick": "0.01", "cutoff_price": "3.00"},
        }
    )


def _option_instruments(request: Request, match: Any, ctx: Context) -> Reply:
    """`/options/instruments/?chain_id=&expiration_dates=&state=&type=`, a page at a time.
    `expiration_dates` may list several dates (comma-separated) here; the real API's
    acceptance of a list is unconfirmed."""
    query = request.query
    if query.get("type", "") not in _TYPES:
        return json_reply({"type": [f'"{query["type"]}" is not a valid choice.']}, 400)
    symbol = ctx.state.chains.get(query.get("chain_id", ""))
    listed = symbol is not None and query.get("state", "active") == "active"
    chain = ctx.market.chain(symbol) if listed else pd.DataFrame()
    right = _TYPES[query.get("type", "")]
    days = set(filter(None, query.get("expiration_dates", "").split(",")))
    rows = [
        row
        for row in chain.to_dict("records")
        if (right is None or row["right"] == right)
        and (not days or f"{row['expiration']:%Y-%m-%d}" in days)
    ]
    offset = _offset(query.get("cursor"))
    if offset is None:
        return _detail(404, "Invalid cursor")
    size = min(ctx.page_size, PAGE_SIZE)
    page = [_option_instrument(row, request.base_url, ctx) for row in rows[offset : offset + size]]
    following = None
    if offset + size < len(rows):
        following = f"{request.base_url}{request.path}?" + urlencode(
            {**query, "cursor": _cursor(offset + size)}
        )
    return json_reply({"next": following, "previous": None, "results": page})


def _cursor(offset: int) -> str:
    return base64.b64encode(urlencode({"o": offset}).encode()).decode()


def _offset(cursor: str | None) -> int | None:
    """The offset an opaque cursor holds (0 without one), None for one the sandbox never made."""
    if not cursor:
        return 0
    try:
        return int(parse_qs(base64.b64decode(cursor).decode())["o"][0])
    except (ValueError, KeyError, UnicodeDecodeError):
        return None


def _option_instrument(row: dict[str, Any], base_url: str, ctx: Context) -> dict[str, Any]:
    occ = row["occ_symbol"]
    instrument_id = _id("option", occ)
    with ctx.state.lock:
        ctx.state.options[instrument_id] = (row["symbol"], occ)
    stamp = f"{ctx.market.as_of:%Y-%m-%dT%H:%M:%S.%fZ}"
    return {
        "chain_id": _id("chain", row["symbol"]),
        "chain_symbol": row["symbol"],
        "created_at": stamp,
        "expiration_date": f"{row['expiration']:%Y-%m-%d}",
        "id": instrument_id,
        "issue_date": "2024-01-02",
        "min_ticks": {"above_tick": "0.05", "below_tick": "0.01", "cutoff_price": "3.00"},
        "rhs_tradability": "tradable",
        "state": "active",
        "strike_price": f"{float(row['strike']):.4f}",
        "tradability": "tradable",
        "type": "call" if row["right"] == "C" else "put",
        "updated_at": stamp,
        "url": f"{base_url}/options/instruments/{instrument_id}/",
        "sellout_datetime": f"{row['expiration']:%Y-%m-%d}T19:45:00+00:00",
        "long_strategy_code": f"{instrument_id}_L1",
        "short_strategy_code": f"{instrument_id}_S1",
    }


# ---- market data ---------------------------------------------------------------------------


def _market_data(request: Request, match: Any, ctx: Context) -> Reply:
    """`/marketdata/options/?ids=a,b`: each id's quote and greeks, `null` for an unknown one."""
    ids = [part for part in request.query.get("ids", "").split(",") if part]
    with ctx.state.lock:
        ctx.state.batch_sizes.append(len(ids))
    if not ids:
        return json_reply({"ids": ["This field is required."]}, 400)
    if len(ids) > MAX_IDS:
        return json_reply({"ids": [f"Ensure this field has no more than {MAX_IDS} elements."]}, 400)
    rows = _contracts(ids, ctx)
    found = faulted_chain(rows, ctx.fault, ctx.rng, ctx.row_fraction) if len(rows) else rows
    by_id = {_id("option", row["occ_symbol"]): row for row in found.to_dict("records")}
    items = [_quote_and_greeks(by_id[i], i, request.base_url, ctx) for i in ids if i in by_id]
    if ctx.fault == "malformed":
        malform(items, ctx.rng, ctx.row_fraction)
    rendered = {item.get("instrument_id"): item for item in items}
    return json_reply({"results": [rendered.get(i) for i in ids]})


def _contracts(ids: list[str], ctx: Context) -> pd.DataFrame:
    """The simulated market's rows of the ids' contracts (the ones it knows and still lists)."""
    with ctx.state.lock:
        known = [ctx.state.options[i] for i in ids if i in ctx.state.options]
    frames = []
    for symbol in dict.fromkeys(symbol for symbol, _ in known):
        chain = ctx.market.chain(symbol)
        wanted = {occ for named, occ in known if named == symbol}
        frames.append(chain[chain["occ_symbol"].isin(wanted)])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _decimal(value: Any) -> str | None:
    """Robinhood's decimal string ("2.100000"); None (JSON null) for a missing value."""
    return None if value is None or pd.isna(value) else f"{float(value):.6f}"


def _missing_iv(ctx: Context) -> str | None:
    """Robinhood spells "no volatility" two ways (deep in-the-money contracts)."""
    return "0.000000" if ctx.rng.random() < 0.5 else None


def _quote_and_greeks(
    row: dict[str, Any], instrument_id: str, base_url: str, ctx: Context
) -> dict[str, Any]:
    strike, mark = float(row["strike"]), row["mark_price"]
    break_even = strike + mark if row["right"] == "C" else strike - mark
    iv = _decimal(row["implied_volatility"])
    return {
        "adjusted_mark_price": _decimal(mark),
        "ask_price": _decimal(row["ask"]),
        "ask_size": 10,
        "bid_price": _decimal(row["bid"]),
        "bid_size": 10,
        "break_even_price": _decimal(break_even),
        "instrument": f"{base_url}/options/instruments/{instrument_id}/",
        "instrument_id": instrument_id,
        "last_trade_price": _decimal(row["last"]),
        "last_trade_size": 1,
        "mark_price": _decimal(mark),
        "open_interest": whole(row["open_interest"]),
        "volume": whole(row["volume"]),
        "updated_at": f"{pd.Timestamp(row['quote_ts']):%Y-%m-%dT%H:%M:%S.%fZ}",
        "symbol": row["symbol"],
        "occ_symbol": row["occ_symbol"],
        "state": "active",
        "implied_volatility": _missing_iv(ctx) if iv is None else iv,
        **{greek: _decimal(row[greek]) for greek in ("delta", "gamma", "theta", "vega")},
        "rho": "0.000000",
        "pricing_model": "Bjerksund-Stensland 1993",
    }


# ---- quotes --------------------------------------------------------------------------------


def _quotes(request: Request, match: Any, ctx: Context) -> Reply:
    """`/quotes/?symbols=A,B`: a quote per symbol in order, `null` for one not listed. Chains
    read only the underlying's price here, which the malformed fault leaves alone (as Schwab's
    chain keeps its `underlying` block whole): it corrupts contracts, not the one quote."""
    raw_symbols = requested(request.query.get("symbols", ""))
    if not raw_symbols:
        return json_reply({"symbols": ["This field is required."]}, 400)
    found = dict(listed_quotes(raw_symbols, ctx, NAME))
    results = [
        _quote(raw, found[raw], request.base_url) if raw in found else None for raw in raw_symbols
    ]
    return json_reply({"results": results}, cacheable=True)


def _quote(raw: str, quote: SimulatedQuote, base_url: str) -> dict[str, Any]:
    equity_id = _id("instrument", quote.symbol)
    return {
        "ask_price": _decimal(quote.ask),
        "ask_size": 3,
        "bid_price": _decimal(quote.bid),
        "bid_size": 2,
        "last_trade_price": _decimal(quote.last),
        "last_extended_hours_trade_price": None,
        "previous_close": _decimal(quote.prev_close),
        "adjusted_previous_close": _decimal(quote.prev_close),
        "symbol": raw,
        "trading_halted": False,
        "has_traded": True,
        "last_trade_price_source": "consolidated",
        "updated_at": f"{quote.quote_ts:%Y-%m-%dT%H:%M:%SZ}",
        "instrument": f"{base_url}/instruments/{equity_id}/",
        "instrument_id": equity_id,
    }


ROUTES = [
    route("POST", r"^/oauth2/token/$", "auth", _token),
    route("GET", r"^/instruments/$", "data", _instruments),
    route("GET", r"^/options/chains/(?P<chain_id>[0-9a-f-]{36})/$", "data", _chain),
    route("GET", r"^/options/instruments/$", "data", _option_instruments),
    route("GET", r"^/marketdata/options/$", "chain", _market_data),
    route("GET", r"^/quotes/$", "data", _quotes),
]
