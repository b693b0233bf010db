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
from collections.abc import Callable, Mapping
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
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cacheable: bool = False


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
