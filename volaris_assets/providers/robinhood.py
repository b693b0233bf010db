"""Robinhood: option chains from the private API its apps use (unofficial, chain capability only).

There is NO official document: Robinhood publishes no API for its brokerage data. Everything here
is built from the best public descriptions, robin_stocks 3.4.0 (`robinhood/authentication.py`,
`options.py`, `helper.py`, `urls.py`) and the CIInc/robinhood-options-mobile app
(`robinhood_service.dart`, the payloads captured in `demo_service.dart`); what neither shows is
marked unconfirmed below. It is a personal brokerage account used by a script, at the owner's
own risk: the API can change or refuse scripted logins without notice.

Auth: `POST /oauth2/token/` with the public web `client_id`, `grant_type=password`, the user's
name and password, `scope=internal`, `expires_in` and a `device_token`, the UUID a client
generates once per device and keeps (`ROBINHOOD_DEVICE_TOKEN`), plus `mfa_code` when the
account uses an authenticator app: a TOTP code (RFC 6238: SHA1, 30 s, 6 digits) computed here
from `ROBINHOOD_MFA_SECRET`. The answer is `{access_token, refresh_token, expires_in, token_type}`.
A device the account has not approved yet gets a `verification_workflow` instead (the
"sheriff" flow: a person approves the device in the app); a headless run cannot, so that is an
`auth` error telling the operator to approve the device once. Access tokens are renewed with
`grant_type=refresh_token` one minute before they lapse, and on a 401, falling back on a new
password login when the refresh token is refused too. Status codes and bodies of refusals are
unconfirmed, so refusals are told apart by the body's keys, never by its text.

A chain is several requests, each one turn of the provider budget (`http.FollowUpRequests`):
1. `GET /instruments/?symbol=X` → `results[0].tradable_chain_id`;
2. `GET /options/chains/{id}/` → `symbol`, `expiration_dates`;
3. per expiration `ChainFilter` covers, `GET /options/instruments/?chain_id=&expiration_dates=
   YYYY-MM-DD&state=active[&type=call|put]`, every page (`next`): `id`, `expiration_date`,
   `strike_price` ("190.0000"), `type`. One date per request, the form both sources use (a
   comma-separated list, as the plural name suggests, is unconfirmed);
4. `GET /marketdata/options/?ids=a,b,...`, 25 ids a request (the app's batch; Robinhood's own
   cap is unconfirmed): decimal strings `bid_price`, `ask_price`, `mark_price`,
   `last_trade_price`, `implied_volatility` (a decimal), `delta`..`rho`; integers `volume`,
   `open_interest`; `instrument_id`, `occ_symbol`, `updated_at` (ISO); an id without data is
   `null` (the app skips nulls);
5. `GET /quotes/?symbols=X` → `results[0].last_trade_price`, the underlying's price (the option
   market data carries none).
Deep in-the-money contracts come with `implied_volatility: "0.000000"` (or null) and greeks from
a model that found no volatility (a vega of -371 in a captured payload): such a row's IV and
greeks are missing, for validation to solve from the mark, not zeros. Index options (SPX...)
are listed elsewhere than `/instruments/` and are not served by this client.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

import httpx
import pandas as pd

from volaris_assets.providers.base import (
    CHAIN_COLUMNS,
    WHOLE_CHAIN,
    ChainFilter,
    ErrorCategory,
    ProviderError,
    canonical,
)
from volaris_assets.providers.http import (
    bad_data,
    build_occ,
    days_to_expiry,
    echoed_symbol,
    field,
    iso_to_utc,
    json_body,
    monotonic,
    no_data,
    numeric,
    same_origin,
)
from volaris_assets.providers.renewal import TokenSource
from volaris_assets.symbols import to_provider

NAME = "robinhood"
DEFAULT_BASE = "https://api.robinhood.com"
REQUIRED_SETTINGS: tuple[str, ...] = (
    "ROBINHOOD_USERNAME",
    "ROBINHOOD_PASSWORD",
    "ROBINHOOD_DEVICE_TOKEN",
)
CAPABILITIES: frozenset[str] = frozenset({"chain"})
# The public OAuth client id of Robinhood's web app, hard-coded in robin_stocks.
CLIENT_ID = "c82SH0WZOsabOXGP2sxqcj34FxkvfnWRZBKlBjFS"
TOKEN_PATH = "/oauth2/token/"
TOKEN_LIFETIME_S = 86400  # what robin_stocks asks for (`expiresIn`)
# The API version robin_stocks pins: the version whose payloads it (and this module) reads.
API_VERSION_HEADERS = {"X-Robinhood-API-Version": "1.431.4"}
# Ids per `/marketdata/options/` request: the mobile app's batch size.
MARKET_DATA_BATCH = 25
# Expirations of one chain: ~20 for a single name, more for index ETFs with daily ones; past
# this, a malformed payload rather than more work.
MAX_EXPIRATIONS = 100
# Pages of one instruments listing; more is a cursor loop, not a chain.
MAX_PAGES = 200
# Renew this long (at most a tenth of the lifetime) before the stated expiry, so that no
# request leaves with a token that lapses in flight.
ACCESS_TOKEN_MARGIN_S = 60.0
TOTP_STEP_S = 30
TOTP_DIGITS = 6
_RIGHTS = {"call": "C", "put": "P"}
_TYPES = {right: wire for wire, right in _RIGHTS.items()}
# Market-data fields read as numbers: (wire name, canonical column).
_QUOTE_FIELDS: tuple[tuple[str, str], ...] = (
    ("bid_price", "bid"),
    ("ask_price", "ask"),
    ("mark_price", "mark_price"),
    ("last_trade_price", "last"),
    ("volume", "volume"),
    ("open_interest", "open_interest"),
)
_GREEKS = ("delta", "gamma", "theta", "vega")


def mfa_key(secret: str) -> bytes:
    """The TOTP key an authenticator app's base32 secret spells (spaces, case and missing
    padding as apps show it are accepted); ValueError, naming no part of it, otherwise."""
    text = "".join(secret.split()).upper()
    try:
        key = base64.b32decode(text + "=" * (-len(text) % 8))
    except ValueError:
        raise ValueError("the MFA secret is not base32") from None
    if not key:
        raise ValueError("the MFA secret is empty")
    return key


def totp(key: bytes, at: float) -> str:
    """The RFC 6238 code (HMAC-SHA1, 30-second steps, 6 digits) for unix time `at`: what an
    authenticator app shows, written out because it is a dozen lines and no dependency."""
    digest = hmac.new(key, struct.pack(">Q", int(at // TOTP_STEP_S)), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{code % 10**TOTP_DIGITS:0{TOTP_DIGITS}d}"


def device_token(text: str) -> str:
    """`ROBINHOOD_DEVICE_TOKEN` in its canonical UUID spelling; ValueError when it is none (the
    device Robinhood approves is this exact string, so a typo is a new, unapproved device)."""
    try:
        return str(uuid.UUID(text.strip()))
    except ValueError:
        raise ValueError("the device token is not a UUID") from None


class RobinhoodClient(TokenSource):
    """`ChainSource` over Robinhood's private option endpoints."""

    name = NAME

    def __init__(
        self,
        *,
        username: str,
        password: str,
        device_token: str,
        mfa_secret: str | None = None,
        base_url: str = DEFAULT_BASE,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, client)
        self._username = username
        self._password = password
        self._device_token = device_token
        self._mfa_key = mfa_key(mfa_secret) if mfa_secret else None
        self._refresh_token: str | None = None
        self.logins = 0
        self.token_refreshes = 0
        self.pages_fetched = 0

    # ---- auth ------------------------------------------------------------------------------

    async def _renew(self) -> None:
        if not await self._refreshed():
            await self._log_in()

    async def _refreshed(self) -> bool:
        """Renew with the refresh token; False (and the token dropped) when there is none or
        it is refused, for a password login to take over."""
        if self._refresh_token is None:
            return False
        status, payload = await self._grant(
            {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        )
        if status != 200:
            self._refresh_token = None
            return False
        self._keep(payload)
        self.token_refreshes += 1
        return True

    async def _log_in(self) -> None:
        form = {
            "grant_type": "password",
            "username": self._username,
            "password": self._password,
            # robin_stocks 3.4.0 sends these three with every password login.
            "try_passkeys": "false",
            "token_request_path": "/login",
            "create_read_only_secondary_token": "true",
        }
        if self._mfa_key is not None:
            form["mfa_code"] = totp(self._mfa_key, time.time())
        status, payload = await self._grant(form)
        if "verification_workflow" in payload:
            raise _auth_error(
                "Robinhood asks to verify this device (verification_workflow), which needs a "
                "person: approve a device once by hand (log in with robin_stocks and confirm "
                "the prompt in the app), set ROBINHOOD_DEVICE_TOKEN to its device_token "
                "(~/.tokens/robinhood.pickle), then run again"
            )
        if "mfa_required" in payload:
            raise _auth_error(
                "Robinhood asks for an MFA code: set ROBINHOOD_MFA_SECRET to the authenticator "
                "app's base32 secret"
                if self._mfa_key is None
                else "Robinhood refused the MFA code: check ROBINHOOD_MFA_SECRET and this "
                "host's clock"
            )
        if status != 200:
            raise _auth_error(
                f"login refused (HTTP {status}): check ROBINHOOD_USERNAME, ROBINHOOD_PASSWORD "
                "and ROBINHOOD_MFA_SECRET"
            )
        self._keep(payload)
        self.logins += 1

    async def _grant(self, form: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """POST to the token endpoint: the status and the body as a dict (an undecodable
        refusal is an empty one; only a 200 must decode)."""
        response = await self._send(
            "POST",
            f"{self.base_url}{TOKEN_PATH}",
            ok_statuses=(400, 401, 403),
            headers=API_VERSION_HEADERS,
            data={
                "client_id": CLIENT_ID,
                "expires_in": str(TOKEN_LIFETIME_S),
                "scope": "internal",
                "device_token": self._device_token,
                **form,
            },
        )
        try:
            payload = json_body(response, NAME)
        except ProviderError:
            if response.status_code == 200:
                raise
            payload = {}
        return response.status_code, payload if isinstance(payload, dict) else {}

    def _keep(self, payload: Mapping[str, Any]) -> None:
        """Hold the tokens of a granted answer, the access token until shortly before expiry."""
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise bad_data(NAME, "token response without access_token")
        lifetime = numeric([payload.get("expires_in")]).iloc[0]
        lifetime = float(TOKEN_LIFETIME_S) if not lifetime > 0 else float(lifetime)
        margin = min(ACCESS_TOKEN_MARGIN_S, lifetime * 0.1)
        self._access_token = token
        self._access_expires_at = monotonic() + lifetime - margin
        refresh = payload.get("refresh_token")
        if isinstance(refresh, str) and refresh:
            self._refresh_token = refresh

    async def _get(self, url: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET a JSON object with a bearer token, renewing it and retrying once on a 401."""
        token = await self._token()
        for attempt in (1, 2):
            response = await self._send(
                "GET",
                url,
                ok_statuses=(401,) if attempt == 1 else (),
                params=params,
                headers={"Authorization": f"Bearer {token}", **API_VERSION_HEADERS},
            )
            if response.status_code != 401:
                payload = json_body(response, NAME)
                if not isinstance(payload, dict):
                    raise bad_data(NAME, f"{httpx.URL(url).path} answered no JSON object")
                return payload
            token = await self._token(stale=token)
        raise AssertionError("unreachable: the second attempt raises on 401")

    async def _pages(self, path: str, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """Every result of a paginated listing, following `next` while it stays on the
        configured host (the bearer token goes with it)."""
        results: list[dict[str, Any]] = []
        url, query = f"{self.base_url}{path}", params
        for _ in range(MAX_PAGES):
            page = await self._get(url, query)
            self.pages_fetched += 1
            results += _results(page)
            next_url = page.get("next")
            if not next_url:
                return results
            if not isinstance(next_url, str) or not same_origin(next_url, self.base_url):
                raise bad_data(NAME, "next is not a link on the configured host")
            url, query = next_url, None
        raise bad_data(NAME, f"more than {MAX_PAGES} pages: pagination does not end")

    # ---- chains ----------------------------------------------------------------------------

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        ticker = to_provider(symbol, NAME)
        chain_id = await self._chain_id(ticker, symbol)
        chain = await self._get(f"{self.base_url}/options/chains/{chain_id}/")
        echoed_symbol(chain.get("symbol"), symbol, NAME)
        listing = {"chain_id": chain_id, "state": "active"}
        if only.right is not None:
            listing["type"] = _TYPES[only.right]
        instruments: list[dict[str, Any]] = []
        for expiration in _expirations(chain, only):
            page_params = {**listing, "expiration_dates": expiration}
            instruments += await self._pages("/options/instruments/", page_params)
        if not instruments:
            raise no_data(NAME, symbol, "option contracts")
        ids = [i["id"] for i in instruments if isinstance(i.get("id"), str)]
        market = await self._market_data(ids)
        if not market:
            raise no_data(NAME, symbol, "option market data")
        quotes = _results(await self._get(f"{self.base_url}/quotes/", {"symbols": ticker}))
        return parse_chain(instruments, market, quotes[0] if quotes else None, symbol)

    async def _chain_id(self, ticker: str, symbol: str) -> str:
        """The option chain id of the equity `ticker` names (no_data for a symbol Robinhood
        does not list or lists without options)."""
        found = _results(await self._get(f"{self.base_url}/instruments/", {"symbol": ticker}))
        if not found:
            raise no_data(NAME, symbol, "listed instrument")
        echoed_symbol(found[0].get("symbol"), symbol, NAME)
        chain_id = found[0].get("tradable_chain_id")
        if not chain_id:
            raise no_data(NAME, symbol, "option chain")
        try:  # it goes into a URL path: a UUID, not whatever the payload holds
            return str(uuid.UUID(str(chain_id)))
        except ValueError:
            raise bad_data(NAME, "tradable_chain_id is not a UUID") from None

    async def _market_data(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        """Market data of every id, `MARKET_DATA_BATCH` ids a request (unknown ids: none)."""
        found: list[dict[str, Any]] = []
        for start in range(0, len(ids), MARKET_DATA_BATCH):
            batch = ",".join(ids[start : start + MARKET_DATA_BATCH])
            page = await self._get(f"{self.base_url}/marketdata/options/", {"ids": batch})
            found += _results(page)
        return found


def _auth_error(message: str) -> ProviderError:
    return ProviderError(ErrorCategory.AUTH, message, provider=NAME)


def _results(page: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The object entries of a page's `results` (Robinhood answers `null` for unknown ids)."""
    results = page.get("results")
    if results is None:
        return []
    if not isinstance(results, list):
        raise bad_data(NAME, "results is not a list")
    return [item for item in results if isinstance(item, dict)]


def _expirations(chain: Mapping[str, Any], only: ChainFilter) -> list[str]:
    """The chain's `expiration_dates` that `only` covers; an entry that is no date is asked
    for, and its contracts validated as usual."""
    dates = chain.get("expiration_dates") or []
    if not isinstance(dates, list) or len(dates) > MAX_EXPIRATIONS:
        raise bad_data(NAME, "expiration_dates is not a short list")
    return [str(text) for text in dates if _wanted(text, only)]


def _wanted(text: Any, only: ChainFilter) -> bool:
    try:
        return only.covers(date.fromisoformat(str(text)))
    except ValueError:
        return True


def parse_chain(
    instruments: list[dict[str, Any]],
    market: list[dict[str, Any]],
    quote: Mapping[str, Any] | None,
    requested: str,
) -> pd.DataFrame:
    """Canonical chain frame: each option instrument with its market data (joined by id) and
    the underlying's last trade. A contract without market data keeps NaN quotes, which
    validation rejects by name."""
    raw = pd.DataFrame.from_records(instruments)
    by_id = {item.get("instrument_id"): item for item in market}
    data = pd.DataFrame([by_id.get(i) or {} for i in field(raw, "id")], index=raw.index)
    frame = pd.DataFrame({"symbol": [requested] * len(raw)}, index=raw.index)
    frame["right"] = field(raw, "type").map(_RIGHTS)
    expiration = pd.to_datetime(field(raw, "expiration_date"), format="%Y-%m-%d", errors="coerce")
    frame["expiration"] = expiration.dt.date.astype(object).where(expiration.notna(), None)
    frame["strike"] = numeric(field(raw, "strike_price"))
    for wire, column in _QUOTE_FIELDS:
        frame[column] = numeric(field(data, wire))
    # No volatility ("0.000000" or null) means Robinhood's model found none: its greeks
    # priced at no volatility are no greeks either.
    iv = numeric(field(data, "implied_volatility"))
    priced = iv > 0
    frame["implied_volatility"] = iv.where(priced)
    for greek in _GREEKS:
        frame[greek] = numeric(field(data, greek)).where(priced)
    frame["underlying_price"] = _last_price(quote, requested)
    frame["quote_ts"] = iso_to_utc(field(data, "updated_at"))
    frame["dte"] = days_to_expiry(expiration, frame["quote_ts"])
    frame["provider"] = NAME
    frame["occ_symbol"] = build_occ(frame)
    return canonical(frame, CHAIN_COLUMNS)


def _last_price(quote: Mapping[str, Any] | None, requested: str) -> float:
    """The underlying's last trade from its `/quotes/` entry; NaN without one, so validation
    rejects the rows as `bad_underlying`."""
    if quote is None:
        return float("nan")
    echoed_symbol(quote.get("symbol"), requested, NAME)
    price = numeric([quote.get("last_trade_price")]).iloc[0]
    return float(price) if price > 0 else float("nan")


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> RobinhoodClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present); a
    device token that is no UUID or an MFA secret that is no base32 is a ValueError."""
    return RobinhoodClient(
        username=settings["ROBINHOOD_USERNAME"],
        password=settings["ROBINHOOD_PASSWORD"],
        device_token=device_token(settings["ROBINHOOD_DEVICE_TOKEN"]),
        mfa_secret=settings.get("ROBINHOOD_MFA_SECRET") or None,
        base_url=settings.get("ROBINHOOD_API_BASE") or DEFAULT_BASE,
        client=client,
    )
