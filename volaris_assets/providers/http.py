"""HTTP plumbing and wire-value coercion shared by the provider clients.

Every provider module sends through `send()` so that one table decides what a status code or a
transport failure means (`ErrorCategory`), and so that no exception text built here can carry a
secret: messages name the method, the URL *path* and the status, never the query string (API
keys travel there for some providers) nor headers (tokens). The coercion helpers at the bottom
exist because providers disagree on how to say "no value" (`null`, `"NaN"`, `-999`, a missing
key) and the canonical frames want NaN for all of them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pydantic_core

from volaris_assets.providers.base import BAR_COLUMNS, ErrorCategory, ProviderError, canonical
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, occ_symbol

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_CONNECTIONS = 20
# An OCC symbol ends with the strike in thousandths, zero-padded to this many digits.
_OCC_STRIKE_DIGITS = 8

_STATUS_CATEGORY: dict[int, ErrorCategory] = {
    401: ErrorCategory.AUTH,
    403: ErrorCategory.AUTH,
    404: ErrorCategory.NOT_FOUND,
    408: ErrorCategory.TIMEOUT,
    429: ErrorCategory.RATE_LIMITED,
    499: ErrorCategory.SERVER_ERROR,
}


def build_client(
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """One pooled client per provider per run.

    The system this replaces opened a session per request and never closed them; a bounded
    pool with keep-alive is both the fix for that leak and the reason concurrency stays cheap.
    Redirects are not followed: a redirect from a market-data API is a misconfiguration, and
    following it could carry credentials to another host.
    """
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        follow_redirects=False,
        headers={"Accept": "application/json", "User-Agent": "volaris-assets"},
    )


def category_for_status(status: int) -> ErrorCategory:
    """The category for a non-success HTTP status."""
    if status in _STATUS_CATEGORY:
        return _STATUS_CATEGORY[status]
    if status >= 500:
        return ErrorCategory.SERVER_ERROR
    return ErrorCategory.UNKNOWN


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110).

    Returns None for a missing or unparseable header so the caller falls back to its own
    backoff; a date in the past means "now" (0.0), not a negative wait.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(seconds, 0.0)


def retry_after_seconds(headers: Mapping[str, str], *, now: datetime | None = None) -> float | None:
    """`Retry-After`, else Alpaca-style `X-RateLimit-Reset` (unix seconds), else None."""
    parsed = parse_retry_after(headers.get("retry-after"), now=now)
    if parsed is not None:
        return parsed
    reset = headers.get("x-ratelimit-reset")
    if reset is None:
        return None
    try:
        reset_at = float(reset)
    except ValueError:
        return None
    current = (now or datetime.now(UTC)).timestamp()
    return max(reset_at - current, 0.0)


def error_for_response(response: httpx.Response, provider: str) -> ProviderError:
    """A `ProviderError` for a non-success response; the message holds no body or query."""
    request = response.request
    category = category_for_status(response.status_code)
    retry_after = None
    if category in (ErrorCategory.RATE_LIMITED, ErrorCategory.SERVER_ERROR):
        retry_after = retry_after_seconds(response.headers)
    return ProviderError(
        category,
        f"HTTP {response.status_code} on {request.method} {request.url.path}",
        provider=provider,
        retry_after=retry_after,
    )


def error_for_exception(
    exc: httpx.HTTPError, provider: str, method: str, path: str
) -> ProviderError:
    """Map an httpx transport failure; only the exception *type* is named, since httpx
    messages may quote the full URL."""
    if isinstance(exc, httpx.TimeoutException):
        category = ErrorCategory.TIMEOUT
    elif isinstance(exc, httpx.DecodingError):
        category = ErrorCategory.BAD_DATA
    elif isinstance(exc, httpx.TransportError):
        # Connection refused/reset, peer closed mid-body, protocol violations: the provider
        # (or the path to it) broke, which is transient from our side.
        category = ErrorCategory.SERVER_ERROR
    else:
        category = ErrorCategory.UNKNOWN
    return ProviderError(category, f"{type(exc).__name__} on {method} {path}", provider=provider)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    ok_statuses: Iterable[int] = (),
    **kwargs: Any,
) -> httpx.Response:
    """Send one request and return the response, or raise a categorised `ProviderError`.

    The body is read fully here, so truncation surfaces as a transport error now rather than
    as a half-parsed payload later. `ok_statuses` lets a caller accept a non-2xx it handles
    itself (e.g. Schwab's 401 → refresh and retry once).
    """
    path = httpx.URL(url).path
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise error_for_exception(exc, provider, method, path) from None
    if response.is_success or response.status_code in set(ok_statuses):
        return response
    raise error_for_response(response, provider)


def json_body(response: httpx.Response, provider: str) -> Any:
    """Decode a JSON body; undecodable or truncated JSON is `bad_data`.

    pydantic-core's parser (already here under pydantic) builds the same objects as `json.loads`
    in half the time, and decoding is a quarter of the CPU a 400-contract chain costs. It reads
    UTF-8 only, the one encoding RFC 8259 allows between systems.
    """
    try:
        return pydantic_core.from_json(response.content, cache_strings="keys")
    except ValueError:
        raise ProviderError(
            ErrorCategory.BAD_DATA,
            f"undecodable JSON from {response.request.method} {response.request.url.path}",
            provider=provider,
        ) from None


def bad_data(provider: str, what: str) -> ProviderError:
    """A payload that decoded but does not have the provider's documented shape."""
    return ProviderError(ErrorCategory.BAD_DATA, what, provider=provider)


def no_data(provider: str, symbol: str, what: str) -> ProviderError:
    """A well-formed answer with nothing in it: a soft empty, not a failure of the provider."""
    return ProviderError(ErrorCategory.NO_DATA, f"no {what} for {symbol}", provider=provider)


def same_origin(url: str, base: str) -> bool:
    """True when `url` (e.g. a pagination link) points at the host of `base`.

    Credentials are re-attached to pagination links, so a link to another origin is refused
    rather than followed.
    """
    target, origin = httpx.URL(url), httpx.URL(base)
    return (target.scheme, target.host, target.port) == (origin.scheme, origin.host, origin.port)


def monotonic() -> float:
    """The clock token lifetimes are measured on (wall-clock jumps must not expire tokens)."""
    return time.monotonic()


# ---- wire-value coercion ------------------------------------------------------------------


def numeric(values: Any, *, sentinels: tuple[float, ...] = ()) -> pd.Series:
    """Floats from wire values: `None`, `"NaN"`, non-numeric strings and `sentinels` → NaN.

    Malformed cells become NaN instead of failing the symbol, so that validation can reject
    exactly the bad rows with a reason. Clean columns (numbers, nulls, numeric text) convert
    in one numpy call; only a column with a bad cell pays for pandas' per-cell coercion.
    """
    return pd.Series(
        floats(values, sentinels=sentinels),
        index=values.index if isinstance(values, pd.Series) else None,
        name=values.name if isinstance(values, pd.Series) else None,
    )


def floats(values: Any, *, sentinels: tuple[float, ...] = ()) -> np.ndarray:
    """`numeric` as a writable float64 array, for parsers that assemble a frame once."""
    array = _floats(values)
    array[np.isinf(array)] = np.nan
    if sentinels:
        array[np.isin(array, sentinels)] = np.nan
    return array


def _floats(values: Any) -> np.ndarray:
    """A writable float64 copy of one column of wire values (bad cells -> NaN)."""
    try:
        array = np.array(values, dtype="float64")
        if array.ndim == 1:
            return array
    except (TypeError, ValueError):
        pass
    coerced = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce")
    return coerced.to_numpy(dtype="float64", na_value=np.nan, copy=True)


def epoch_to_utc(values: Any, unit: str) -> pd.Series:
    """tz-aware UTC timestamps from epoch numbers (or numeric strings) in `unit`."""
    return pd.to_datetime(numeric(values), unit=unit, utc=True).astype("datetime64[ns, UTC]")


def iso_to_utc(values: Any) -> pd.Series:
    """tz-aware UTC timestamps from ISO-8601 strings; unparseable values become NaT."""
    parsed = pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce")
    return parsed.astype("datetime64[ns, UTC]")


def session_day(values: pd.Series, tz: str) -> pd.Series:
    """Canonical daily-bar timestamps: the session date, read in the zone the provider labels
    its daily bars in, stamped at 00:00 UTC.

    Providers stamp a daily bar at midnight ET (Polygon, Alpaca), midnight Central (Schwab),
    the open (Yahoo) or midnight UTC (Tiingo, Databento); reading each in its own zone and
    re-stamping makes the same session land on the same `ts` whichever provider served it.
    """
    local = values.dt.tz_convert(tz)
    return (
        local.dt.normalize().dt.tz_localize(None).dt.tz_localize(UTC).astype("datetime64[ns, UTC]")
    )


class HttpSource:
    """Common state of an HTTP provider client: its base URL and pooled `httpx.AsyncClient`.

    A client passed in is shared (the run owns it); a client made here is owned and closed by
    `aclose()`, so a caller that forgets to pass one still cannot leak connections.
    """

    name: str = ""

    def __init__(self, base_url: str, client: httpx.AsyncClient | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self.http = client if client is not None else build_client()

    async def aclose(self) -> None:
        if self._owns_client:
            await self.http.aclose()

    async def _get_json(self, path_or_url: str, **kwargs: Any) -> Any:
        url = path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"
        response = await send(self.http, "GET", url, provider=self.name, **kwargs)
        return json_body(response, self.name)


def field(raw: pd.DataFrame, name: str) -> pd.Series:
    """Column `name` of a frame built from wire records, all-None when no record had the key
    (a missing key is a NaN cell for validation to reject, not a KeyError)."""
    if name in raw:
        return raw[name]
    return pd.Series([None] * len(raw), index=raw.index, dtype=object)


def echoed_symbol(raw: Any, requested: str, provider: str) -> str:
    """The canonical form of the symbol the provider says it answered for.

    Results are keyed by what the provider echoes, never by what was asked: an answer for a
    different symbol is bad data, not a silent mislabel.
    """
    try:
        echoed = normalize_symbol(str(raw if raw is not None else ""))
    except InvalidSymbol:
        raise bad_data(provider, f"answer for {requested} echoes no valid symbol") from None
    if echoed != requested:
        raise bad_data(provider, f"asked for {requested}, answer is for {echoed}")
    return echoed


def build_occ(frame: pd.DataFrame) -> pd.Series:
    """OCC symbols for rows whose expiration, right and strike parsed; None elsewhere."""
    values = occ_symbols(
        frame["symbol"].tolist(),
        frame["expiration"].tolist(),
        frame["right"].tolist(),
        frame["strike"].to_numpy(dtype="float64", na_value=np.nan),
    )
    return pd.Series(values, index=frame.index, dtype=object)


def occ_symbols(
    symbols: Sequence[str], expirations: Sequence[Any], rights: Sequence[Any], strikes: np.ndarray
) -> list[str | None]:
    """`build_occ` over columns, for parsers that have them before any frame exists.

    An OCC symbol is its contract's root, expiration and right followed by its strike, so
    `occ_symbol` formats each distinct (root, expiration, right) and each distinct strike once
    and rows join the two: a chain has ~20 of the first and ~100 strikes for ~400 contracts,
    and formatting every row was a third of the time a chain took to parse.
    """
    heads: dict[tuple[str, Any, str], str] = {}
    tails: dict[float, str] = {}
    out: list[str | None] = []
    for sym, exp, right, strike in zip(symbols, expirations, rights, strikes.tolist(), strict=True):
        if not (isinstance(exp, date) and right in ("C", "P") and strike > 0):
            out.append(None)
            continue
        head = heads.get((sym, exp, right))
        if head is None:
            head = heads[sym, exp, right] = occ_symbol(sym, exp, right, 0.0)[:-_OCC_STRIKE_DIGITS]
        tail = tails.get(strike)
        if tail is None:
            tail = tails[strike] = occ_symbol(sym, exp, right, strike)[len(head) :]
        out.append(head + tail)
    return out


def in_window(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Rows with `start <= ts < end`; rows whose `ts` did not parse stay for validation."""
    ts = frame["ts"]
    keep = ((ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end))) | ts.isna()
    return frame[keep]


OHLCV = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume"}
# Alpaca and Polygon: one-letter OHLCV keys.
SHORT_OHLCV = {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v"}


def bar_frame(
    raw: pd.DataFrame,
    ts: pd.Series,
    *,
    symbol: str,
    timeframe: str,
    provider: str,
    daily_zone: str,
    window: tuple[datetime, datetime],
    names: Mapping[str, str] = OHLCV,
) -> pd.DataFrame:
    """Canonical bars from wire records whose OHLCV fields are named by `names`.

    Daily bars are re-stamped to the session date (read in `daily_zone`, the zone the provider
    labels its daily bars in) and only rows inside `window` are kept.
    """
    if timeframe == "1d":
        ts = session_day(ts, daily_zone)
    frame = pd.DataFrame({"symbol": symbol, "timeframe": timeframe, "ts": ts})
    for column, wire_name in names.items():
        frame[column] = numeric(field(raw, wire_name))
    frame["provider"] = provider
    return canonical(in_window(frame, *window), BAR_COLUMNS)
