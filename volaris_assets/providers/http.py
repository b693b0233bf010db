"""HTTP plumbing and wire-value coercion shared by the provider clients.

Every provider module sends through `send()` so that one table decides what a status code or a
transport failure means (`ErrorCategory`), and so that no exception text built here can carry a
secret: messages name the method, the URL *path* and the status, never the query string (API
keys travel there for some providers) nor headers (tokens). It also reads every body as a
stream under a size cap (`VOLARIS_MAX_RESPONSE_MB`), so that one provider answering with a
runaway body fails one symbol as `bad_data` instead of the whole run for lack of memory. The
coercion helpers at the bottom exist because providers disagree on how to say "no value"
(`null`, `"NaN"`, `-999`, a missing key) and the canonical frames want NaN for all of them.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pydantic_core

from volaris_assets.calendar import FIRST_SESSION
from volaris_assets.providers.base import (
    BAR_COLUMNS,
    PROVIDER_NAMES,
    ErrorCategory,
    ProviderError,
    canonical,
)
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, occ_symbol
from volaris_assets.tls import tls_context

DEFAULT_TIMEOUT_S = 10.0
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_MAX_CONNECTIONS = 20
MB = 1024 * 1024
RESPONSE_CAP_SETTING = "VOLARIS_MAX_RESPONSE_MB"
# The largest body read from a provider, in MB. A body costs its bytes and what is parsed from
# it: parsing a Schwab chain peaks at 4.3-5.1x its size (sandbox chains replicated to 2-40 MB:
# bytes 1x, JSON objects 2.7x, frame and temporaries the rest). bench/bench_big_body.py
# (option_chains over 100 symbols, Schwab client, sandbox) peaks at 191 MB without a big body;
# one body of 11 MB, read and parsed, took it to 239 MB and one of 15 MB to 265 MB. At 12 MB a
# body just under the cap still fits the 250 MB goal, and one over it costs at most the cap
# plus a chunk (a 50 MB body: 629 MB uncapped). 12 MB is ~10,000 Schwab contracts with greeks
# (~1.2 KB each), twice the largest single-name chains; a provider whose answers are
# legitimately bigger has a larger cap of its own (`HttpSource.response_cap_mb`), and any
# provider's can be set (`VOLARIS_MAX_RESPONSE_MB=12,databento=64`).
DEFAULT_MAX_RESPONSE_MB = 12.0
DEFAULT_MAX_RESPONSE_BYTES = int(DEFAULT_MAX_RESPONSE_MB * MB)
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
        verify=tls_context(),
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
    elif isinstance(exc, httpx.ConnectError):
        # Refused, or the name did not resolve ("Name or service not known"): nothing answered.
        category = ErrorCategory.UNREACHABLE
    elif isinstance(exc, httpx.TransportError):
        # Reset, peer closed mid-body, protocol violations: the provider (or the path to it)
        # broke while answering, which is transient from our side.
        category = ErrorCategory.SERVER_ERROR
    else:
        category = ErrorCategory.UNKNOWN
    return ProviderError(category, f"{type(exc).__name__} on {method} {path}", provider=provider)


class FollowUpRequests:
    """Budget for the requests of one call beyond its first.

    The resilience layer takes one turn of the provider's budget per call (a chain, a page of
    bars), but some calls take several requests: Yahoo asks once per expiration, Polygon and
    Alpaca follow pagination links, Schwab refreshes its token. A provider counts every one,
    so every request after a call's first waits for a turn of its own here.
    """

    def __init__(self, acquire: Callable[[], Awaitable[None]]) -> None:
        self._acquire = acquire
        self.sent = 0

    async def before_request(self) -> None:
        if self.sent:
            await self._acquire()
        self.sent += 1


_follow_ups: contextvars.ContextVar[FollowUpRequests | None] = contextvars.ContextVar(
    "volaris_follow_up_requests", default=None
)


@contextlib.contextmanager
def paced_follow_ups(acquire: Callable[[], Awaitable[None]]) -> Iterator[FollowUpRequests]:
    """Within the block (one call, in this task), requests after the first `acquire` first."""
    follow_ups = FollowUpRequests(acquire)
    token = _follow_ups.set(follow_ups)
    try:
        yield follow_ups
    finally:
        _follow_ups.reset(token)


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    ok_statuses: Iterable[int] = (),
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    **kwargs: Any,
) -> httpx.Response:
    """Send one request and return the response, or raise a categorised `ProviderError`.

    The body is read fully here, so truncation surfaces as a transport error now rather than
    as a half-parsed payload later, and it is read as a stream of at most `max_bytes` (see
    `read_capped`). `ok_statuses` lets a caller accept a non-2xx it handles itself (e.g.
    Schwab's 401 → refresh and retry once). The body of any other status is never used: it is
    read (under the same cap) only so the connection can serve the next request, and whatever
    goes wrong reading it, the status is what the error reports.
    """
    path = httpx.URL(url).path
    accepted = set(ok_statuses)
    follow_ups = _follow_ups.get()
    if follow_ups is not None:
        await follow_ups.before_request()
    try:
        async with client.stream(method, url, **kwargs) as response:
            if not (response.is_success or response.status_code in accepted):
                with contextlib.suppress(ProviderError, httpx.HTTPError):
                    await read_capped(response, max_bytes, provider)
                raise error_for_response(response, provider)
            await read_capped(response, max_bytes, provider)
    except httpx.HTTPError as exc:
        raise error_for_exception(exc, provider, method, path) from None
    return response


async def read_capped(response: httpx.Response, max_bytes: int, provider: str) -> None:
    """Read `response`'s body into `response.content`, or raise `bad_data` past `max_bytes`.

    A declared `Content-Length` over the cap is refused before any of the body is read;
    otherwise the (decoded) chunks are counted as they arrive and reading stops at the first
    one that crosses the cap, so what is held never exceeds the cap plus one chunk. The
    caller's `async with client.stream(...)` then closes the connection mid-body.
    """
    declared = _declared_length(response)
    if declared is not None and declared > max_bytes:
        raise _too_large(response, provider, max_bytes, f"{declared / MB:.1f} MB")
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(response, provider, max_bytes, f"over {max_bytes / MB:g} MB")
        chunks.append(chunk)
    # What `Response.aread()` does, bounded: callers read `.content`/`.json()` as before.
    response._content = b"".join(chunks)


def _declared_length(response: httpx.Response) -> int | None:
    """The `Content-Length` a response declares, None when absent or not a number."""
    try:
        return int(response.headers["content-length"])
    except (KeyError, ValueError):
        return None


def _too_large(response: httpx.Response, provider: str, max_bytes: int, size: str) -> ProviderError:
    """`bad_data` naming the size and the cap; like every message here, only the URL's path."""
    request = response.request
    return ProviderError(
        ErrorCategory.BAD_DATA,
        f"response too large ({size}, cap {max_bytes / MB:g} MB) on "
        f"{request.method} {request.url.path}",
        provider=provider,
    )


@dataclasses.dataclass(frozen=True)
class ResponseCaps:
    """Response size caps as configured: one for every provider (None when not set), and
    overrides by provider name (MB)."""

    default_mb: float | None = None
    overrides_mb: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def for_provider(self, name: str, built_in_mb: float = DEFAULT_MAX_RESPONSE_MB) -> int:
        """The cap for provider `name` in bytes: its own override, else the one for every
        provider, else `built_in_mb` (the provider client's `response_cap_mb`)."""
        fallback = built_in_mb if self.default_mb is None else self.default_mb
        return int(self.overrides_mb.get(name, fallback) * MB)


def parse_response_caps(text: str | None) -> ResponseCaps:
    """Caps from `VOLARIS_MAX_RESPONSE_MB`: "24", "24,databento=128" or "polygon=48" (MB,
    providers not named get the bare number, else their client's own cap); empty means the
    clients' own caps. A malformed value is a `ValueError` naming the accepted form, never a silent
    default: a cap that quietly fell back could be the one that lets a run run out of memory.
    """
    default: float | None = None
    overrides: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        name, separator, value = part.rpartition("=")
        name = name.strip().lower()
        if not separator:
            if default is not None:
                raise _caps_error(part, "more than one MB for every provider")
            default = _megabytes(value, part)
        elif name not in PROVIDER_NAMES:
            raise _caps_error(part, f"unknown provider (known: {', '.join(PROVIDER_NAMES)})")
        elif name in overrides:
            raise _caps_error(part, "provider named twice")
        else:
            overrides[name] = _megabytes(value, part)
    return ResponseCaps(default, overrides)


# A cap past this protects no machine this runs on (parsing costs 4-5x a body's bytes).
LARGEST_CAP_MB = 4096.0


def _megabytes(text: str, part: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _caps_error(part, "not a number") from None
    if not 0 < value <= LARGEST_CAP_MB:
        raise _caps_error(part, f"MB must be above 0 and at most {LARGEST_CAP_MB:.0f}")
    return value


def _caps_error(part: str, reason: str) -> ValueError:
    return ValueError(
        f"bad {RESPONSE_CAP_SETTING} entry {part!r} ({reason}): expected MB and/or "
        "provider=MB, comma-separated, e.g. '24' or '24,databento=128'"
    )


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
    try:
        target = httpx.URL(url)
    except httpx.InvalidURL:
        return False  # refused like a foreign link: an unreadable one points nowhere we know
    origin = httpx.URL(base)
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
    return _series_like(values, floats(values, sentinels=sentinels))


def _series_like(values: Any, array: np.ndarray) -> pd.Series:
    """`array` as a Series with the index and name of `values` when it is one."""
    if isinstance(values, pd.Series):
        return pd.Series(array, index=values.index, name=values.name)
    return pd.Series(array)


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
    except (TypeError, ValueError, OverflowError):
        pass
    cells = pd.Series(values, dtype=object)
    try:
        coerced = pd.to_numeric(cells, errors="coerce")
    except OverflowError:  # an integer past a float's range, which "coerce" does not cover
        return np.array([_float_or_nan(cell) for cell in cells], dtype="float64")
    return coerced.to_numpy(dtype="float64", na_value=np.nan, copy=True)


def _float_or_nan(cell: Any) -> float:
    try:
        return float(cell)
    except (TypeError, ValueError, OverflowError):
        return math.nan


# The timestamps a provider may send: from the calendar's first session (no market data this
# system holds is older; an epoch in the wrong unit lands in 1970) to near the end of
# datetime64[ns], the canonical timestamp type (2262-04-11).
_EARLIEST = pd.Timestamp(FIRST_SESSION, tz=UTC)
_LATEST = pd.Timestamp("2262-01-01", tz=UTC)
_NS_PER_UNIT = {"s": 1e9, "ms": 1e6, "us": 1e3, "ns": 1.0}


def epoch_to_utc(values: Any, unit: str) -> pd.Series:
    """tz-aware UTC timestamps from epoch numbers (or numeric strings) in `unit`; a value
    out of range (an epoch in another unit) becomes NaT, for validation to count, instead of a
    1970 timestamp or an error for the whole column. The range is checked on the numbers, in
    numpy: checking the parsed timestamps in pandas doubled the conversion's cost."""
    epochs = floats(values)
    scale = _NS_PER_UNIT[unit]
    epochs[~((epochs >= _EARLIEST.value / scale) & (epochs <= _LATEST.value / scale))] = np.nan
    parsed = pd.to_datetime(_series_like(values, epochs), unit=unit, utc=True)
    return parsed.astype("datetime64[ns, UTC]")


def iso_to_utc(values: Any) -> pd.Series:
    """tz-aware UTC timestamps from ISO-8601 strings; anything else becomes NaT.

    Each value is read as ISO 8601 on its own (`format="ISO8601"`): left to guess, pandas
    takes one layout from the first value and turns a later `...15:00:00Z` after a
    `...59.123456Z` into NaT (Alpaca drops a zero fraction). A bare number is not a date
    here (as text it is not ISO 8601): read as nanoseconds it would be a 1970 timestamp.
    """
    text = pd.Series(values, dtype=object).astype(str)
    return _utc_ns(pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601"))


def _utc_ns(parsed: pd.Series) -> pd.Series:
    """`parsed` as the canonical datetime64[ns, UTC], NaT outside `_EARLIEST`..`_LATEST`
    (past the end, the cast would raise for the whole column)."""
    inside = parsed.isna() | ((parsed >= _EARLIEST) & (parsed <= _LATEST))
    return parsed.where(inside).astype("datetime64[ns, UTC]")


def days_to_expiry(expiration: pd.Series, quote_ts: pd.Series) -> pd.Series:
    """The canonical `dte`: calendar days from each quote's New York date to its expiration
    date (NaN where either is unknown). Dates are compared as naive dates: subtracting
    zone-aware midnights loses an hour across a daylight-saving change, and `.days` then
    floors 15 days to 14."""
    quote_day = quote_ts.dt.tz_convert("America/New_York").dt.tz_localize(None).dt.normalize()
    expires = _utc_ns(pd.to_datetime(expiration, errors="coerce").dt.tz_localize(UTC))
    return numeric((expires.dt.tz_localize(None) - quote_day).dt.days)


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


def _server_time(response: httpx.Response) -> datetime | None:
    """The `Date` an HTTP server stamps its answers with (RFC 9110: every origin server with a
    clock sends one), or None when missing or unreadable."""
    try:
        stamped = parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return stamped.astimezone(UTC) if stamped.tzinfo else None


class HttpSource:
    """Common state of an HTTP provider client: its base URL and pooled `httpx.AsyncClient`.

    A client passed in is shared (the run owns it); a client made here is owned and closed by
    `aclose()`, so a caller that forgets to pass one still cannot leak connections.
    `max_response_bytes` caps every body this source reads; `registry.build_sources` sets it
    from `VOLARIS_MAX_RESPONSE_MB`, so that no provider module has to know the setting.
    `clock` is the provider's time by its latest answer (`providers/live_chains.py`).
    """

    name: str = ""
    # The largest answer this provider legitimately sends, in MB, when the operator sets none.
    response_cap_mb: float = DEFAULT_MAX_RESPONSE_MB

    def __init__(self, base_url: str, client: httpx.AsyncClient | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self.http = client if client is not None else build_client()
        self.max_response_bytes = int(self.response_cap_mb * MB)
        self.clock: datetime | None = None

    async def aclose(self) -> None:
        if self._owns_client:
            await self.http.aclose()

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """`send` with this source's client, name and response cap; the answer's `Date` sets
        the source's `clock`."""
        response = await send(
            self.http,
            method,
            url,
            provider=self.name,
            max_bytes=self.max_response_bytes,
            **kwargs,
        )
        self.clock = _server_time(response) or datetime.now(UTC)
        return response

    async def _get_json(self, path_or_url: str, **kwargs: Any) -> Any:
        url = path_or_url if "://" in path_or_url else f"{self.base_url}{path_or_url}"
        return json_body(await self._send("GET", url, **kwargs), self.name)


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
        # A strike whose thousandths overflow a float has no OCC symbol (validation rejects
        # the row for it), and would otherwise fail the whole chain.
        if not (isinstance(exp, date) and right in ("C", "P") and 0 < strike * 1000 < math.inf):
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
