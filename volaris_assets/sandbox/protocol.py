"""What the sandbox's HTTP layer and its per-provider wire modules exchange.

A wire module (`sandbox/wire/<provider>.py`) turns a parsed `Request` plus the simulated
market into a `Reply`; the server decides auth, rate limits and transport faults around it.
Keeping replies as plain data lets the server cache rendered bodies and cut or corrupt them.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from volaris_assets.sandbox.market import SandboxMarket


@dataclass(frozen=True)
class Request:
    provider: str
    method: str
    path: str  # after the provider prefix, starting with "/"
    query: Mapping[str, str]
    headers: Mapping[str, str]  # case-insensitive lookups (an email.message.Message)
    form: Mapping[str, str]
    base_url: str  # this provider's base as clients configure it, e.g. http://host:port/polygon


@dataclass
class Reply:
    """An answer; with `stream` set, the body is those chunks, sent chunked as they are made
    (no Content-Length) instead of `body`, for bodies too big to hold."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cacheable: bool = False
    stream: Iterable[bytes] | None = None


@dataclass
class Context:
    """What a route handler may use besides the request."""

    market: SandboxMarket
    fault: str | None  # the payload fault drawn for this request, if any
    rng: random.Random
    row_fraction: float
    page_size: int
    state: Any  # the provider's own mutable state (e.g. Schwab's issued tokens)
    keys: Mapping[str, str]


Handler = Callable[[Request, re.Match[str], Context], Reply]


@dataclass(frozen=True)
class Route:
    """`kind` decides which faults may hit it: "auth" (token/cookie endpoints) only transport
    faults, "data" also malformed payloads, "chain" also the chain faults."""

    method: str
    pattern: re.Pattern[str]
    kind: str
    handler: Handler


def route(method: str, pattern: str, kind: str, handler: Handler) -> Route:
    return Route(method, re.compile(pattern), kind, handler)


def json_reply(
    payload: Any, status: int = 200, *, cacheable: bool = False, **headers: str
) -> Reply:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return Reply(status, body, headers=dict(headers), cacheable=cacheable)


def retry_after_header(seconds: float) -> str:
    """`Retry-After` in HTTP's whole delta-seconds, rounded up so that a client that obeys
    never comes back early; "0" (retry now) is a valid answer of a window with room."""
    return str(math.ceil(max(seconds, 0.0)))


def num(value: Any, digits: int | None = None) -> float | None:
    """A JSON number from a frame cell (NaN/None → null)."""
    if value is None:
        return None
    number = float(value)
    if math.isnan(number) or math.isinf(number):
        return None
    return round(number, digits) if digits is not None else number


def whole(value: Any) -> int | None:
    """A JSON integer from a frame cell (NaN/None → null)."""
    number = num(value)
    return None if number is None else round(number)


# Chunks of a streamed body: big enough that writing 50 MB is a few hundred writes, small
# enough that the sandbox holds next to nothing of it.
STREAM_CHUNK_BYTES = 64 * 1024
# One contract as Schwab spells it; a huge body is this, repeated.
_HUGE_RECORD: dict[str, Any] = {
    "putCall": "PUT",
    "symbol": "{symbol}  260320P00100000",
    "description": "{symbol} Mar 20 2026 100 Put",
    "bid": 1.23,
    "ask": 1.27,
    "last": 1.25,
    "mark": 1.25,
    "totalVolume": 1520,
    "openInterest": 10344,
    "volatility": 29.417,
    "delta": -0.312,
    "gamma": 0.021,
    "theta": -0.054,
    "vega": 0.118,
    "strikePrice": 100.0,
    "daysToExpiration": 9,
    "quoteTimeInLong": 1773241200000,
}


def huge_json_reply(symbol: str, size_mb: float) -> Reply:
    """200 with about `size_mb` MB of valid JSON about `symbol`, made while it is sent."""
    return Reply(200, b"", stream=_huge_json(symbol, int(size_mb * 1024 * 1024)))


def _huge_json(symbol: str, size: int) -> Iterator[bytes]:
    """`{"symbol": ..., "status": "SUCCESS", "contracts": [record, record, ...]}`, `size` bytes
    or a little more, one block of records at a time (the same block, built once)."""
    record = json.dumps(_HUGE_RECORD, separators=(",", ":")).replace("{symbol}", symbol).encode()
    block = b",".join([record] * max(1, STREAM_CHUNK_BYTES // (len(record) + 1)))
    head = json.dumps({"symbol": symbol, "status": "SUCCESS"})[:-1].encode()
    yield head + b',"contracts":['
    yield block
    following = b"," + block
    for _ in range(max(0, size // len(following) - 1)):
        yield following
    yield b"]}"
