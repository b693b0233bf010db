"""Charles Schwab Trader API: option chains, price history and quotes (the primary chain source).

Auth is OAuth2 with a refresh token that a human obtains in a browser and that lapses after
about 7 days; the client exchanges it for ~30-minute access tokens, refreshes one minute before
expiry and once more on a 401 (Schwab also rejects tokens early), and keeps any new refresh
token the endpoint returns. `refresh_token_status()` tells the operator when to log in again.

Wire facts (captured payloads of `/marketdata/v1/chains`): `callExpDateMap`/`putExpDateMap` are
keyed "YYYY-MM-DD:DTE" then strike ("265.0") → list of contracts with `bid`, `ask`, `last`,
`mark`, `totalVolume`, `openInterest`, `volatility` (a PERCENT), `delta`..`vega` (-999 or "NaN"
when Schwab's model has no value), `strikePrice`, `daysToExpiration`, `quoteTimeInLong` (epoch
ms); top level has `symbol`, `status`, `underlyingPrice` and, when asked, `underlying{...}`.
`/marketdata/v1/quotes?symbols=A,B` answers an object keyed by symbol, each with `symbol`,
`assetMainType` and `quote{lastPrice, bidPrice, askPrice, totalVolume, closePrice (previous
close), quoteTime, tradeTime (epoch ms)}` (notes §1.2).
"""

from __future__ import annotations

import base64
import functools
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
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
    bad_data,
    bar_frame,
    echoed_symbol,
    epoch_to_utc,
    field,
    floats,
    json_body,
    monotonic,
    no_data,
    numeric,
    occ_symbols,
)
from volaris_assets.providers.renewal import TokenSource
from volaris_assets.symbols import INDEX_SYMBOLS, to_provider

NAME = "schwab"
DEFAULT_BASE = "https://api.schwabapi.com"
REQUIRED_SETTINGS: tuple[str, ...] = (
    "SCHWAB_APP_KEY",
    "SCHWAB_SECRET_KEY",
    "SCHWAB_REFRESH_TOKEN",
)
CAPABILITIES: frozenset[str] = frozenset({"chain", "intraday", "daily"})
# Symbols per `/quotes` request. Schwab states no cap (notes §1.1); 250 keeps the URL near 2 KB,
# far below the ~8 KB servers accept, and the S&P 500 with the ETFs in three requests.
QUOTE_BATCH = 250

REFRESH_TOKEN_LIFETIME = timedelta(days=7)
REFRESH_TOKEN_WARNING = timedelta(days=2)
# Refresh this long (at most a tenth of the lifetime) before the access token's stated expiry,
# so a request never leaves with a token that lapses in flight.
ACCESS_TOKEN_MARGIN_S = 60.0
MISSING = (-999.0,)
_DAILY_ZONE = "America/Chicago"  # Schwab stamps daily candles at midnight Central
_HISTORY_PARAMS: dict[str, dict[str, str]] = {
    "1m": {"periodType": "day", "frequencyType": "minute", "frequency": "1"},
    "5m": {"periodType": "day", "frequencyType": "minute", "frequency": "5"},
    "1d": {"periodType": "year", "frequencyType": "daily", "frequency": "1"},
}
# `contractType` for each `ChainFilter.right`.
_CONTRACT_TYPES: dict[str | None, str] = {None: "ALL", "C": "CALL", "P": "PUT"}


@dataclass(frozen=True)
class RefreshTokenStatus:
    """How long the operator has before the refresh token lapses (None when its issue time
    is unknown, i.e. `SCHWAB_REFRESH_TOKEN_ISSUED_AT` is unset and no rotation happened)."""

    issued_at: datetime | None
    expires_at: datetime | None
    relogin_soon: bool

    def time_left(self, now: datetime) -> timedelta | None:
        return None if self.expires_at is None else self.expires_at - now


class SchwabClient(TokenSource):
    """`ChainSource`, `BarSource` and `QuoteSource` over the Schwab Trader API."""

    name = NAME
    max_quote_batch = QUOTE_BATCH

    def __init__(
        self,
        *,
        app_key: str,
        secret_key: str,
        refresh_token: str,
        base_url: str = DEFAULT_BASE,
        refresh_token_issued_at: datetime | None = None,
        client: httpx.AsyncClient | None = None,
        on_new_refresh_token: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(base_url, client)
        self._basic = base64.b64encode(f"{app_key}:{secret_key}".encode()).decode()
        self._refresh_token = refresh_token
        self._refresh_issued_at = refresh_token_issued_at
        self._on_new_refresh_token = on_new_refresh_token
        self.token_refreshes = 0

    # ---- auth ------------------------------------------------------------------------------

    @property
    def refresh_token(self) -> str:
        """The refresh token in force (rotated if the token endpoint returned a new one); the
        caller persists it. Never log it."""
        return self._refresh_token

    def refresh_token_status(self, now: datetime | None = None) -> RefreshTokenStatus:
        """Whether the 7-day refresh token lapses within two days (operator re-login)."""
        return refresh_token_status(self._refresh_issued_at, now)

    async def _renew(self) -> None:
        response = await self._send(
            "POST",
            f"{self.base_url}/v1/oauth/token",
            ok_statuses=(400, 401, 403),
            headers={"Authorization": f"Basic {self._basic}"},
            data={"grant_type": "refresh_token", "refresh_token": self._refresh_token},
        )
        if response.status_code != 200:
            raise ProviderError(
                ErrorCategory.AUTH,
                f"token refresh refused (HTTP {response.status_code}); the refresh token is "
                "invalid or expired: an operator must log in again",
                provider=NAME,
            )
        payload = json_body(response, NAME)
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise bad_data(NAME, "token response without access_token")
        lifetime = numeric([payload.get("expires_in")]).iloc[0]
        lifetime = 1800.0 if pd.isna(lifetime) else float(lifetime)
        self._access_token = token
        margin = min(ACCESS_TOKEN_MARGIN_S, lifetime * 0.1)
        self._access_expires_at = monotonic() + max(lifetime - margin, 0.0)
        self.token_refreshes += 1
        rotated = payload.get("refresh_token")
        if isinstance(rotated, str) and rotated and rotated != self._refresh_token:
            self._refresh_token = rotated
            self._refresh_issued_at = datetime.now(UTC)
            if self._on_new_refresh_token is not None:
                self._on_new_refresh_token(rotated)

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        """GET with a bearer token, refreshing and retrying exactly once on a 401."""
        token = await self._token()
        for attempt in (1, 2):
            response = await self._send(
                "GET",
                f"{self.base_url}{path}",
                ok_statuses=(401,) if attempt == 1 else (),
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            if response.status_code != 401:
                return json_body(response, NAME)
            token = await self._token(stale=token)
        raise AssertionError("unreachable: the second attempt raises on 401")

    # ---- chains ----------------------------------------------------------------------------

    async def option_chain(
        self, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
    ) -> pd.DataFrame:
        params = {
            "symbol": to_provider(symbol, NAME),
            "contractType": _CONTRACT_TYPES[only.right],
            "includeUnderlyingQuote": "true",
            "strategy": "SINGLE",
        }
        if only.expires_from is not None:
            params["fromDate"] = only.expires_from.isoformat()
        if only.expires_to is not None:
            params["toDate"] = only.expires_to.isoformat()
        return parse_chain(await self._get("/marketdata/v1/chains", params), symbol)

    # ---- quotes ----------------------------------------------------------------------------

    async def quotes(self, symbols: Sequence[str], as_of: datetime) -> pd.DataFrame:
        params = {
            "symbols": ",".join(to_provider(symbol, NAME) for symbol in symbols),
            "fields": "quote",
            "indicative": "false",
        }
        return parse_quotes(await self._get("/marketdata/v1/quotes", params))

    # ---- bars ------------------------------------------------------------------------------

    async def bars(
        self, symbol: str, timeframe: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        if timeframe not in _HISTORY_PARAMS:
            raise ValueError(f"unsupported timeframe {timeframe!r}")
        params = {
            "symbol": to_provider(symbol, NAME),
            **_HISTORY_PARAMS[timeframe],
            "startDate": str(int(start.timestamp() * 1000)),
            "endDate": str(int(end.timestamp() * 1000)),
            "needExtendedHoursData": "false",
        }
        payload = await self._get("/marketdata/v1/pricehistory", params)
        return parse_price_history(payload, symbol, timeframe, start, end)


# Numeric contract fields: (wire name, canonical column, values meaning "no model value"). The
# other ~30 fields of a contract are never read.
_NUMERIC_FIELDS: tuple[tuple[str, str, tuple[float, ...]], ...] = (
    ("strikePrice", "strike", ()),
    ("bid", "bid", ()),
    ("ask", "ask", ()),
    ("last", "last", ()),
    ("mark", "mark_price", ()),
    ("totalVolume", "volume", ()),
    ("openInterest", "open_interest", ()),
    ("volatility", "implied_volatility", MISSING),
    ("delta", "delta", MISSING),
    ("gamma", "gamma", MISSING),
    ("theta", "theta", MISSING),
    ("vega", "vega", MISSING),
    ("daysToExpiration", "dte", ()),
    ("quoteTimeInLong", "quote_ts", ()),
)
_NUMERIC_GETTER = operator.itemgetter(*(wire for wire, _, _ in _NUMERIC_FIELDS))
# An OCC option root: what `_roots` accepts from the wire (SPXW, NDXP...).
_OPTION_ROOT = re.compile(r"^[A-Z]{1,6}$")


@dataclass
class _Contracts:
    """The contract dicts of a chain payload in wire order, with what their map keys say."""

    records: list[dict[str, Any]]
    rights: list[str]
    strike_keys: list[str]
    expirations: list[date | None]  # from the "YYYY-MM-DD:DTE" key
    key_dte: list[float]  # from the same key, NaN when it has none


def _contracts(payload: Mapping[str, Any]) -> _Contracts:
    """Walk `callExpDateMap`/`putExpDateMap`; a map of the wrong shape is bad data."""
    found = _Contracts([], [], [], [], [])
    for side, right in (("callExpDateMap", "C"), ("putExpDateMap", "P")):
        side_map = payload.get(side, {})
        if not isinstance(side_map, dict):
            raise bad_data(NAME, f"{right} expiration map is not an object")
        for exp_key, strikes in side_map.items():
            if not isinstance(strikes, dict):
                raise bad_data(NAME, "strike map is not an object")
            if not all(isinstance(contracts, list) for contracts in strikes.values()):
                raise bad_data(NAME, "contract list is not a list")
            listed = [
                (strike_key, contract)
                for strike_key, contracts in strikes.items()
                for contract in contracts
                if isinstance(contract, dict)
            ]
            expiration, key_dte = _expiration_key(exp_key)
            found.records += [contract for _, contract in listed]
            found.strike_keys += [strike_key for strike_key, _ in listed]
            found.rights += [right] * len(listed)
            found.expirations += [expiration] * len(listed)
            found.key_dte += [key_dte] * len(listed)
    return found


@functools.lru_cache(maxsize=4096)
def _expiration_key(key: str) -> tuple[date | None, float]:
    """The expiration date and DTE an expiration-map key ("2026-12-18:24") spells.

    Cached: every chain of a run repeats the same few dozen keys, and parsing them was a
    tenth of a chain's parse time.
    """
    parts = key.split(":")
    parsed = pd.to_datetime(pd.Series(parts[:1]), format="%Y-%m-%d", errors="coerce").iloc[0]
    dte = floats(parts[1:2] or [None])[0]
    return (None if pd.isna(parsed) else parsed.date()), float(dte)


def _numeric_columns(records: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The numeric fields as float columns (a missing key or a malformed cell is NaN).

    One C-level `itemgetter` per contract and one conversion of the whole table in the usual
    case; only a chain with a missing key or a non-numeric cell pays per field.
    """
    try:
        table = np.array([_NUMERIC_GETTER(r) for r in records], dtype="float64")
    except (KeyError, TypeError, ValueError, OverflowError):
        return {
            column: floats([r.get(wire) for r in records], sentinels=sentinels)
            for wire, column, sentinels in _NUMERIC_FIELDS
        }
    table[np.isinf(table)] = np.nan
    columns = {}
    for index, (_, column, sentinels) in enumerate(_NUMERIC_FIELDS):
        values = table[:, index]
        if sentinels:
            values[np.isin(values, sentinels)] = np.nan
        columns[column] = values
    return columns


def _expirations(contracts: _Contracts) -> np.ndarray:
    """Expiration dates from the map keys, else (rarely) from each contract's `expirationDate`."""
    dates = np.array(contracts.expirations, dtype=object)
    unknown = np.array([d is None for d in contracts.expirations])
    if not unknown.any():
        return dates
    wire = pd.Series([r.get("expirationDate") for r in contracts.records], dtype=object)
    from_field = pd.to_datetime(wire, utc=True, errors="coerce").dt.tz_convert("America/New_York")
    fallback = from_field.dt.date.to_numpy(dtype=object)
    dates[unknown] = [None if pd.isna(d) else d for d in fallback[unknown]]
    return dates


def parse_chain(payload: Any, requested: str) -> pd.DataFrame:
    """Canonical chain frame from a `/marketdata/v1/chains` payload.

    Built column by column from the wire dicts straight into the canonical frame: a 400-contract
    chain is parsed once, without intermediate frames.
    """
    if (
        not isinstance(payload, dict)
        or "callExpDateMap" not in payload
        and "putExpDateMap" not in payload
    ):
        raise bad_data(NAME, "chain payload without expiration maps")
    symbol = echoed_symbol(payload.get("symbol"), requested, NAME)
    contracts = _contracts(payload)
    if not contracts.records:
        raise no_data(NAME, symbol, "option contracts")
    columns = _numeric_columns(contracts.records)
    strike = columns["strike"]
    if np.isnan(strike).any():
        strike = np.where(np.isnan(strike), floats(contracts.strike_keys), strike)
    dte = columns["dte"]
    if np.isnan(dte).any():
        dte = np.where(np.isnan(dte), np.array(contracts.key_dte), dte)
    columns["implied_volatility"] /= 100.0  # Schwab sends a percent
    quote_ms = columns["quote_ts"]
    quote_ms[quote_ms <= 0] = np.nan
    expiration = _expirations(contracts)
    return canonical(
        {
            **columns,  # strike, dte and quote_ts are replaced below by their repaired forms
            "symbol": symbol,
            "occ_symbol": pd.Series(
                occ_symbols(_roots(contracts, symbol), expiration, contracts.rights, strike),
                dtype=object,
            ),
            "expiration": expiration,
            "strike": strike,
            "right": contracts.rights,
            "underlying_price": _underlying_price(payload),
            "dte": dte,
            "provider": NAME,
            "quote_ts": epoch_to_utc(quote_ms, "ms"),
        },
        CHAIN_COLUMNS,
    )


def _roots(contracts: _Contracts, symbol: str) -> list[str]:
    """Each contract's OCC root: the symbol's, except for an index, whose chain mixes roots
    (SPX monthlies settle at the open, SPXW weeklies at the close, on the same strikes and
    days), so each contract's own `optionRoot` keeps the two apart."""
    if symbol not in INDEX_SYMBOLS:
        return [symbol] * len(contracts.records)
    return [
        root if isinstance(root, str) and _OPTION_ROOT.match(root) else symbol
        for root in (record.get("optionRoot") for record in contracts.records)
    ]


def _underlying_price(payload: Mapping[str, Any]) -> float:
    top = numeric([payload.get("underlyingPrice")]).iloc[0]
    if pd.notna(top) and top > 0:
        return float(top)
    underlying = payload.get("underlying")
    if isinstance(underlying, dict):
        for key in ("last", "mark"):
            value = numeric([underlying.get(key)]).iloc[0]
            if pd.notna(value) and value > 0:
                return float(value)
    return float("nan")


def parse_quotes(payload: Any) -> pd.DataFrame:
    """Canonical quotes from a `/marketdata/v1/quotes` payload: an object keyed by symbol, plus
    `errors` naming the symbols Schwab does not know (those are simply absent). An index
    (`$SPX`) has no bid or ask; a quote without a time falls back on its trade time."""
    if not isinstance(payload, dict):
        raise bad_data(NAME, "quotes payload is not an object")
    entries = [
        (key, entry)
        for key, entry in payload.items()
        if key != "errors" and isinstance(entry, dict)
    ]
    blocks = [
        entry.get("quote") if isinstance(entry.get("quote"), dict) else {} for _, entry in entries
    ]

    def column(name: str) -> np.ndarray:
        return floats([block.get(name) for block in blocks])

    stamp = column("quoteTime")
    stamp = np.where(stamp > 0, stamp, column("tradeTime"))
    return canonical(
        {
            "symbol": [quote_symbol(entry.get("symbol") or key) for key, entry in entries],
            "last": column("lastPrice"),
            "bid": column("bidPrice"),
            "ask": column("askPrice"),
            "volume": column("totalVolume"),
            "prev_close": column("closePrice"),
            "quote_ts": epoch_to_utc(np.where(stamp > 0, stamp, np.nan), "ms"),
            "provider": NAME,
        },
        QUOTE_COLUMNS,
    )


def parse_price_history(
    payload: Any, requested: str, timeframe: str, start: datetime, end: datetime
) -> pd.DataFrame:
    """Canonical bars from a `/marketdata/v1/pricehistory` payload (`empty: true` → 0 rows)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("candles", []), list):
        raise bad_data(NAME, "price history payload without a candle list")
    symbol = echoed_symbol(payload.get("symbol"), requested, NAME)
    candles = [c for c in payload.get("candles") or [] if isinstance(c, dict)]
    if not candles:
        return canonical(pd.DataFrame(), BAR_COLUMNS)
    raw = pd.DataFrame.from_records(candles)
    return bar_frame(
        raw,
        epoch_to_utc(field(raw, "datetime"), "ms"),
        symbol=symbol,
        timeframe=timeframe,
        provider=NAME,
        daily_zone=_DAILY_ZONE,
        window=(start, end),
    )


def refresh_token_status(
    issued_at: datetime | None, now: datetime | None = None
) -> RefreshTokenStatus:
    """The refresh token's remaining life, from its issue time (unknown -> no warning)."""
    if issued_at is None:
        return RefreshTokenStatus(None, None, relogin_soon=False)
    expires = issued_at + REFRESH_TOKEN_LIFETIME
    current = now or datetime.now(UTC)
    return RefreshTokenStatus(
        issued_at, expires, relogin_soon=expires - current <= REFRESH_TOKEN_WARNING
    )


def refresh_token_issued_at(settings: Mapping[str, str]) -> datetime | None:
    """`SCHWAB_REFRESH_TOKEN_ISSUED_AT` as an aware datetime (naive values are taken as UTC)."""
    issued = settings.get("SCHWAB_REFRESH_TOKEN_ISSUED_AT")
    if not issued:
        return None
    issued_at = datetime.fromisoformat(issued)
    return issued_at if issued_at.tzinfo else issued_at.replace(tzinfo=UTC)


def create(settings: Mapping[str, str], client: httpx.AsyncClient | None = None) -> SchwabClient:
    """A client from environment-style settings (`REQUIRED_SETTINGS` must be present)."""
    issued_at = refresh_token_issued_at(settings)
    return SchwabClient(
        app_key=settings["SCHWAB_APP_KEY"],
        secret_key=settings["SCHWAB_SECRET_KEY"],
        refresh_token=settings["SCHWAB_REFRESH_TOKEN"],
        base_url=settings.get("SCHWAB_API_BASE") or DEFAULT_BASE,
        refresh_token_issued_at=issued_at,
        client=client,
    )
