"""The loopback sandbox: every provider's wire format on one port, with faults on demand.

Each provider lives under its own prefix (`http://127.0.0.1:PORT/schwab`, `/polygon`, ...), so
pointing a client at the sandbox is only a matter of its `*_API_BASE` setting (`settings()`
gives them all, with the fake keys the sandbox accepts). Around each provider's routes the
server enforces, in this order: the provider's auth, its rate limit (429 + `Retry-After`), the
profile's huge bodies (requests about `huge_body_symbols`, answered with a body streamed as it
is made), then the fault profile (one drawn fault per request, see `faults.py`), and answers
from a cache of rendered bodies when no fault applies, which is what keeps it at thousands of
requests/s.
"""

from __future__ import annotations

import math
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import ModuleType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from volaris_assets.sandbox import faults as fault_rules
from volaris_assets.sandbox.limits import RateLimit, SlidingWindow
from volaris_assets.sandbox.market import LruCache, SandboxMarket
from volaris_assets.sandbox.protocol import (
    Context,
    Reply,
    Request,
    Route,
    huge_json_reply,
    json_reply,
)
from volaris_assets.sandbox.stats import SandboxStats
from volaris_assets.sandbox.wire import WIRES
from volaris_assets.sandbox.wire.robinhood import RobinhoodAccount
from volaris_assets.sandbox.wire.schwab import TokenIssuer
from volaris_assets.sandbox.wire.yahoo import CrumbJar

DEFAULT_KEYS: dict[str, dict[str, str]] = {
    "schwab": {
        "app_key": "sbx-schwab-app-key",
        "secret": "sbx-schwab-secret",
        "refresh_token": "sbx-schwab-refresh-token",
    },
    "polygon": {"api_key": "sbx-polygon-key"},
    "tiingo": {"api_key": "sbx-tiingo-key"},
    "alpaca": {"key_id": "sbx-alpaca-key-id", "secret": "sbx-alpaca-secret"},
    "finnhub": {"api_key": "sbx-finnhub-key"},
    "databento": {"api_key": "db-sbx-databento-key"},
    "yahoo": {},
    "robinhood": {
        "username": "sbx-robinhood-user",
        "password": "sbx-robinhood-password",
        "device_token": "5bd3c6a4-7e1f-4c52-9d0e-3f6a2b8c1d47",
        # The account's authenticator-app secret (base32); "" makes an account without MFA.
        "mfa_secret": "SBXROBINHOODMFASECRETTOTPKEY2345",
    },
}
# Query and form parameters that carry credentials: never part of a request's identity or
# cache key.
_SECRET_PARAMS = frozenset({"apiKey", "token", "crumb", "password", "device_token", "mfa_code"})


@dataclass(frozen=True)
class Action:
    """What the HTTP layer does with one request."""

    reply: Reply | None  # None with `hang` set: say nothing
    fault: str | None = None
    latency_s: float = 0.0
    hang_s: float = 0.0


class Sandbox:
    """A running (or ready-to-run) sandbox server; use `start_sandbox()` or `with Sandbox(...)`."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: Any = "none",
        seed: int = 7,
        as_of: datetime | None = None,
        keys: Mapping[str, Mapping[str, str]] | None = None,
        rate_limits: Mapping[str, RateLimit] | None = None,
        page_sizes: Mapping[str, int] | None = None,
        schwab_token_lifetime_s: float = 1800.0,
        schwab_rotate_refresh_token: bool = False,
    ) -> None:
        self.seed = seed
        self.market = SandboxMarket(seed, as_of)
        self.market.warm_up()
        self.keys = {name: dict(DEFAULT_KEYS[name], **(keys or {}).get(name, {})) for name in WIRES}
        self.page_sizes = dict(page_sizes or {})
        self.stats = SandboxStats()
        self._profile = fault_rules.parse_faults(faults)
        self._windows = {name: SlidingWindow(limit) for name, limit in (rate_limits or {}).items()}
        self._occurrences: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._cache = LruCache(2048)
        self._schwab_options = (schwab_token_lifetime_s, schwab_rotate_refresh_token)
        self.state: dict[str, Any] = self._fresh_state()
        self._server = ThreadingHTTPServer((host, port), _Handler)
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self._server.sandbox = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    # ---- lifecycle and settings ------------------------------------------------------------

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, provider: str) -> str:
        return f"{self.base_url}/{provider}"

    def settings(self) -> dict[str, str]:
        """Environment-style settings that point every provider client at this sandbox."""
        keys = self.keys
        return {
            "SCHWAB_API_BASE": self.url("schwab"),
            "SCHWAB_APP_KEY": keys["schwab"]["app_key"],
            "SCHWAB_SECRET_KEY": keys["schwab"]["secret"],
            "SCHWAB_REFRESH_TOKEN": keys["schwab"]["refresh_token"],
            "POLYGON_API_BASE": self.url("polygon"),
            "POLYGON_API_KEY": keys["polygon"]["api_key"],
            "TIINGO_API_BASE": self.url("tiingo"),
            "TIINGO_API_KEY": keys["tiingo"]["api_key"],
            "ALPACA_API_BASE": self.url("alpaca"),
            "ALPACA_API_KEY": keys["alpaca"]["key_id"],
            "ALPACA_API_SECRET": keys["alpaca"]["secret"],
            "FINNHUB_API_BASE": self.url("finnhub"),
            "FINNHUB_API_KEY": keys["finnhub"]["api_key"],
            "DATABENTO_API_BASE": self.url("databento"),
            "DATABENTO_API_KEY": keys["databento"]["api_key"],
            "YAHOO_API_BASE": self.url("yahoo"),
            "YAHOO_COOKIE_URL": f"{self.url('yahoo')}/fc",
            "ROBINHOOD_API_BASE": self.url("robinhood"),
            "ROBINHOOD_USERNAME": keys["robinhood"]["username"],
            "ROBINHOOD_PASSWORD": keys["robinhood"]["password"],
            "ROBINHOOD_DEVICE_TOKEN": keys["robinhood"]["device_token"],
            "ROBINHOOD_MFA_SECRET": keys["robinhood"]["mfa_secret"],
        }

    def start(self) -> Sandbox:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server_close()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def __enter__(self) -> Self:
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ---- runtime controls ------------------------------------------------------------------

    @property
    def faults(self) -> fault_rules.FaultProfile:
        return self._profile

    def set_faults(self, spec: Any) -> None:
        """Swap the fault profile (e.g. make a provider fail, then recover)."""
        self._profile = fault_rules.parse_faults(spec)

    def set_rate_limit(self, provider: str, limit: RateLimit | None) -> None:
        with self._lock:
            if limit is None:
                self._windows.pop(provider, None)
            else:
                self._windows[provider] = SlidingWindow(limit)

    def set_as_of(self, as_of: datetime) -> None:
        self.market.set_as_of(as_of)
        self._cache.clear()

    def reset(self, faults: Any = "none") -> None:
        """Back to a just-started sandbox (same port and clock): faults, rate limits, issued
        tokens, cookies and ids, request counts and the fault draw sequence."""
        self.set_faults(faults)
        with self._lock:
            self._windows.clear()
            self._occurrences.clear()
        self.state = self._fresh_state()
        self.stats.reset()

    def _fresh_state(self) -> dict[str, Any]:
        lifetime_s, rotate = self._schwab_options
        return {
            "schwab": TokenIssuer(
                refresh_tokens={self.keys["schwab"]["refresh_token"]},
                lifetime_s=lifetime_s,
                rotate_refresh_token=rotate,
            ),
            "yahoo": CrumbJar(),
            "robinhood": RobinhoodAccount(
                refresh_tokens=set(), mfa_secret=self.keys["robinhood"]["mfa_secret"] or None
            ),
        }

    def revoke_tokens(self) -> None:
        """Expire every Schwab access token now, as Schwab sometimes does before the hour."""
        self.state["schwab"].revoke_all()

    # ---- request handling ------------------------------------------------------------------

    def handle(self, request: Request) -> Action:
        """Decide the answer to one parsed request (no I/O here, which keeps it testable)."""
        wire = WIRES.get(request.provider)
        if wire is None:
            return Action(json_reply({"error": f"no provider {request.provider!r}"}, 404))
        matched = _match(wire.ROUTES, request)
        if matched is None:
            return Action(json_reply({"error": "no such path in the sandbox"}, 404))
        endpoint, match = matched
        identity = _identity(request)
        with self._lock:
            self._occurrences[identity] += 1
            occurrence = self._occurrences[identity]
            window = self._windows.get(request.provider)
        profile = self._profile
        context = Context(
            market=self.market,
            fault=None,
            rng=random.Random(0),
            row_fraction=profile.row_fraction,
            page_size=self.page_sizes.get(request.provider, 10**9),
            state=self.state.get(request.provider),
            keys=self.keys[request.provider],
        )
        denied = wire.authorize(request, context)
        if denied is not None:
            return Action(denied)
        wait = window.admit() if window is not None else None
        if wait is not None:
            return Action(wire.rate_limited_reply(math.ceil(wait)))
        huge = _requested_symbols(request, match) & profile.huge_body_symbols
        if huge and endpoint.kind != "auth":
            reply = huge_json_reply(min(huge), profile.huge_body_mb)
            return Action(reply, fault_rules.HUGE_BODY)
        decision = fault_rules.draw(
            profile, self.seed, identity, occurrence, _allowed(endpoint.kind, wire)
        )
        if decision.fault == "rate_limit":
            return Action(
                wire.rate_limited_reply(_advised_wait(profile, window)),
                decision.fault,
                decision.latency_s,
            )
        return self._answer(wire, endpoint, match, request, context, decision, profile)

    def _answer(
        self,
        wire: ModuleType,
        endpoint: Route,
        match: re.Match[str],
        request: Request,
        context: Context,
        decision: fault_rules.Decision,
        profile: fault_rules.FaultProfile,
    ) -> Action:
        fault, lag = decision.fault, decision.latency_s
        if fault == "server_error":
            status = decision.rng.choice((500, 502, 503))
            return Action(json_reply({"error": "sandbox server error"}, status), fault, lag)
        if fault == "timeout":
            return Action(None, fault, lag, hang_s=profile.hang_s)
        if fault == "expired_token":
            return Action(wire.expired_reply(), fault, lag)
        payload_fault = fault if fault in fault_rules.PAYLOAD_FAULTS else None
        context.fault, context.rng = payload_fault, decision.rng
        if payload_fault is None:
            key = (request.provider, request.method, request.path, _query_key(request))
            reply = self._cache.get(key)
            if reply is None:
                reply = endpoint.handler(request, match, context)
                if reply.cacheable and reply.status == 200:
                    self._cache.put(key, reply)
        else:
            reply = endpoint.handler(request, match, context)
        return Action(reply, fault, lag)


def _advised_wait(profile: fault_rules.FaultProfile, window: SlidingWindow | None) -> float:
    """The `Retry-After` of an injected 429: the profile's fixed advice, else the account
    window's own wait (none without a window)."""
    if profile.retry_after_s is not None:
        return profile.retry_after_s
    return window.wait() if window is not None else 0.0


def _match(routes: list[Route], request: Request) -> tuple[Route, re.Match[str]] | None:
    for endpoint in routes:
        if endpoint.method == request.method:
            found = endpoint.pattern.match(request.path)
            if found:
                return endpoint, found
    return None


def _allowed(kind: str, wire: ModuleType) -> set[str]:
    allowed = {"rate_limit", "server_error", "timeout", "reset", "truncated"}
    if kind in ("data", "chain"):
        allowed.add("malformed")
        if hasattr(wire, "expired_reply"):
            allowed.add("expired_token")
    if kind == "chain":
        allowed |= {"bad_greeks", "crossed", "empty_chain"}
    return allowed


def _requested_symbols(request: Request, match: re.Match[str]) -> set[str]:
    """The listed symbols a request names, however its provider spells that: a path segment
    (`ticker`), `symbol`, or a comma list in `symbols` (query or form)."""
    named = [match.groupdict().get("ticker") or ""]
    for params in (request.query, request.form):
        named += [params.get("symbol", ""), *params.get("symbols", "").split(",")]
    listed = (SandboxMarket.listed(name, request.provider) for name in named if name)
    return {symbol for symbol in listed if symbol}


def _query_key(request: Request) -> tuple[tuple[str, str], ...]:
    items = {**request.query, **request.form}
    return tuple(sorted((k, v) for k, v in items.items() if k not in _SECRET_PARAMS))


def _identity(request: Request) -> str:
    query = "&".join(f"{k}={v}" for k, v in _query_key(request))
    return f"{request.provider} {request.method} {request.path}?{query}"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "VolarisSandbox/1"
    # Headers and body go out in separate writes; with Nagle on, delayed ACKs add ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the sandbox is driven by tests and benchmarks, stats say what happened."""

    def date_time_string(self, timestamp: float | None = None) -> str:
        """Every answer's `Date` is the sandbox market's clock, as a provider's is its own: a
        client tells by it which instant a live chain stands for (`providers/live_chains.py`)."""
        sandbox: Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        return formatdate(sandbox.market.as_of.timestamp(), usegmt=True)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        sandbox: Sandbox = self.server.sandbox  # type: ignore[attr-defined]
        split = urlsplit(self.path)
        _, _, rest = split.path.partition("/")
        provider, _, tail = rest.partition("/")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        form = dict(parse_qsl(body.decode("latin-1"))) if body else {}
        request = Request(
            provider=provider,
            method=method,
            path=f"/{tail}",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=self.headers,  # type: ignore[arg-type]
            form=form,
            base_url=sandbox.url(provider),
        )
        arrived = time.monotonic()
        action = sandbox.handle(request)
        if action.latency_s:
            time.sleep(action.latency_s)
        if action.reply is None:
            sandbox.stats.record(provider, request.path, "hang", action.fault, arrived)
            time.sleep(action.hang_s)
            self.close_connection = True
            return
        if action.fault == "reset":
            sandbox.stats.record(provider, request.path, "reset", action.fault, arrived)
            self._reset(action.reply)
            return
        sandbox.stats.record(provider, request.path, action.reply.status, action.fault, arrived)
        self._send(action.reply, truncate=action.fault == "truncated")

    def _send(self, reply: Reply, *, truncate: bool) -> None:
        if reply.stream is not None:
            self._stream(reply)
            return
        body = reply.body[: max(1, len(reply.body) // 2)] if truncate else reply.body
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, reply: Reply) -> None:
        """Send `reply.stream` chunked, each chunk as it is made. A client that hangs up
        mid-body (a capped client should) ends the answer, quietly."""
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for chunk in reply.stream or ():
                self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset(self, reply: Reply) -> None:
        """Promise the whole body, send half, then abort the connection with a TCP RST."""
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body[: len(reply.body) // 2])
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


def start_sandbox(
    port: int = 0,
    faults: Any = "none",
    seed: int = 7,
    as_of: datetime | None = None,
    keys: Mapping[str, Mapping[str, str]] | None = None,
    **options: Any,
) -> Sandbox:
    """Start a sandbox on 127.0.0.1 in a background thread; use it as a context manager (or
    call `stop()`). `options` are the other `Sandbox` arguments (rate_limits, page_sizes,
    schwab_token_lifetime_s, schwab_rotate_refresh_token)."""
    return Sandbox(port=port, faults=faults, seed=seed, as_of=as_of, keys=keys, **options).start()
