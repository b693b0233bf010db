"""Response size caps: every provider body is read as a stream and refused past its cap.

A loopback server answers with bodies of a chosen size and framing (a declared Content-Length,
chunked, gzip), so each path through `read_capped` runs over real HTTP; the wiring from
`VOLARIS_MAX_RESPONSE_MB` to the sources is checked through the registry and the resource.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from volaris_assets.providers.base import PROVIDER_NAMES, ErrorCategory, ProviderError
from volaris_assets.providers.http import (
    DEFAULT_MAX_RESPONSE_BYTES,
    DEFAULT_MAX_RESPONSE_MB,
    MB,
    RESPONSE_CAP_SETTING,
    ResponseCaps,
    build_client,
    parse_response_caps,
    send,
)
from volaris_assets.providers.registry import build_sources, load_module
from volaris_assets.providers.simulated import SimulatedProvider
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets_tests.sandbox_fixtures import FAST_TIMEOUT_S, SANDBOX_AS_OF, SANDBOX_HANG_S

pytest_plugins = ("volaris_assets_tests.sandbox_fixtures",)

pytestmark = pytest.mark.timeout(60)
CHUNK = 64 * 1024
# What `framing=declared` promises: far more than any cap, and more than it ever sends.
DECLARED = 10 * 1024**3


def json_of_size(size: int) -> bytes:
    """A JSON object of exactly `size` bytes (at least 10)."""
    return b'{"pad":"' + b"x" * (size - 10) + b'"}'


class _Handler(BaseHTTPRequestHandler):
    """GET /body?framing=length|chunked|gzip|declared&size=N[&status=S]; size -1 is endless."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""

    def do_GET(self) -> None:
        query = dict(parse_qsl(urlsplit(self.path).query))
        framing, size = query.get("framing", "length"), int(query.get("size", "100"))
        self.send_response(int(query.get("status", "200")))
        self.send_header("Content-Type", "application/json")
        try:
            getattr(self, f"_{framing}")(size)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up mid-body, as a capped one does

    def _length(self, size: int) -> None:
        body = json_of_size(size)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _gzip(self, size: int) -> None:
        body = gzip.compress(json_of_size(size))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _declared(self, size: int) -> None:
        """Promise DECLARED bytes, send `size`, then say nothing for longer than the client's
        read timeout: a client that waited for the body would time out."""
        self.send_header("Content-Length", str(DECLARED))
        self.end_headers()
        self.wfile.write(b"x" * size)
        time.sleep(3 * FAST_TIMEOUT_S)
        self.close_connection = True

    def _chunked(self, size: int) -> None:
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        body = json_of_size(size) if size >= 0 else b""
        sent = 0
        while size < 0 or sent < len(body):
            chunk = body[sent : sent + CHUNK] if size >= 0 else b"x" * CHUNK
            self.wfile.write(b"%X\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        self.wfile.write(b"0\r\n\r\n")


class BodyServer:
    """The loopback server, on a free port in a background thread."""

    def __init__(self) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def url(self, **query: object) -> str:
        host, port = self._server.server_address[:2]
        pairs = "&".join(f"{k}={v}" for k, v in {**query, "token": "sk-SECRET"}.items())
        return f"http://{host}:{port}/body?{pairs}"

    def __enter__(self) -> BodyServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[BodyServer]:
    with BodyServer() as running:
        yield running


async def _capped(url: str, max_bytes: int) -> httpx.Response:
    async with build_client(timeout_s=FAST_TIMEOUT_S) as client:
        return await send(client, "GET", url, provider="test", max_bytes=max_bytes)


async def _whole(url: str) -> httpx.Response:
    """The response as `send` read it before it had a cap: `client.request`, read whole."""
    async with build_client(timeout_s=FAST_TIMEOUT_S) as client:
        return await client.request("GET", url)


def _refusal(url: str, max_bytes: int) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        asyncio.run(_capped(url, max_bytes))
    return caught.value


def _no_secret(error: ProviderError) -> None:
    assert "sk-SECRET" not in str(error) and "token" not in str(error) and "?" not in str(error)


# --- reading under the cap -----------------------------------------------------------------


def test_a_declared_length_over_the_cap_is_refused_before_the_body_is_read(server):
    started = time.perf_counter()
    error = _refusal(server.url(framing="declared", size=1024), MB)
    # Reading the body would have waited out the 1 s read timeout (a `timeout` error).
    assert time.perf_counter() - started < FAST_TIMEOUT_S
    assert error.category is ErrorCategory.BAD_DATA and error.provider == "test"
    assert error.args[0] == "response too large (10240.0 MB, cap 1 MB) on GET /body"
    _no_secret(error)


def test_an_endless_chunked_body_is_cut_at_the_cap(server):
    error = _refusal(server.url(framing="chunked", size=-1), 2 * MB)
    assert error.category is ErrorCategory.BAD_DATA
    assert error.args[0] == "response too large (over 2 MB, cap 2 MB) on GET /body"
    _no_secret(error)


def test_the_cap_is_inclusive(server):
    exact = asyncio.run(_capped(server.url(framing="chunked", size=MB), MB))
    assert len(exact.content) == MB
    error = _refusal(server.url(framing="chunked", size=MB + 1), MB)
    assert error.category is ErrorCategory.BAD_DATA


def test_the_cap_counts_decoded_bytes_so_a_small_gzip_cannot_expand_past_it(server):
    url = server.url(framing="gzip", size=8 * MB)  # ~8 KB on the wire
    error = _refusal(url, MB)
    assert error.args[0] == "response too large (over 1 MB, cap 1 MB) on GET /body"


@pytest.mark.parametrize("framing", ["length", "chunked", "gzip"])
def test_under_the_cap_the_response_is_what_a_whole_read_gave(server, framing):
    url = server.url(framing=framing, size=300_000)
    capped, whole = asyncio.run(_capped(url, MB)), asyncio.run(_whole(url))
    assert capped.status_code == whole.status_code == 200
    assert capped.content == whole.content == json_of_size(300_000)
    assert capped.json() == whole.json() == json.loads(json_of_size(300_000))
    assert capped.text == whole.text
    assert capped.headers.keys() == whole.headers.keys()
    assert capped.request.url == whole.request.url


@pytest.mark.parametrize(("status", "category"), [(503, "server_error"), (429, "rate_limited")])
def test_an_error_status_is_reported_as_such_whatever_its_body(server, status, category):
    for framing, size in (("length", 200), ("chunked", -1), ("declared", 1024)):
        error = _refusal(server.url(framing=framing, size=size, status=status), MB)
        assert error.category == category, framing
        assert error.args[0] == f"HTTP {status} on GET /body"


def test_a_refused_body_does_not_poison_the_pool(server):
    """After a body is cut mid-stream, the next request on the same client is answered."""

    async def both() -> tuple[ErrorCategory | None, bytes]:
        first = None
        async with build_client(timeout_s=FAST_TIMEOUT_S) as client:
            try:
                await send(client, "GET", server.url(framing="chunked", size=-1), provider="t")
            except ProviderError as error:
                first = error.category
            second = await send(client, "GET", server.url(size=100), provider="t")
            return first, second.content

    first, content = asyncio.run(both())
    assert first is ErrorCategory.BAD_DATA and content == json_of_size(100)


# --- VOLARIS_MAX_RESPONSE_MB ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "schwab_mb", "databento_mb"),
    [
        (None, DEFAULT_MAX_RESPONSE_MB, DEFAULT_MAX_RESPONSE_MB),
        ("", DEFAULT_MAX_RESPONSE_MB, DEFAULT_MAX_RESPONSE_MB),
        ("24", 24, 24),
        (" 24 , Databento=128 ", 24, 128),
        ("databento=128", DEFAULT_MAX_RESPONSE_MB, 128),
        ("0.5", 0.5, 0.5),
    ],
)
def test_caps_parse_to_bytes_per_provider(text, schwab_mb, databento_mb):
    caps = parse_response_caps(text)
    assert caps.for_provider("schwab") == int(schwab_mb * MB)
    assert caps.for_provider("databento") == int(databento_mb * MB)
    assert caps.for_provider("not-a-provider") == caps.for_provider("finnhub")


def test_the_default_cap_is_what_send_and_unconfigured_sources_use():
    assert ResponseCaps().for_provider("schwab") == DEFAULT_MAX_RESPONSE_BYTES == 12 * MB


@pytest.mark.parametrize(
    "text", ["abc", "0", "-3", "nan", "inf", "24,32", "polgon=48", "schwab=", "=5", "schwab=x"]
)
def test_bad_caps_name_the_accepted_form(text):
    with pytest.raises(ValueError) as caught:
        parse_response_caps(text)
    message = str(caught.value)
    assert RESPONSE_CAP_SETTING in message and "provider=MB" in message
    assert "e.g. '24' or '24,databento=128'" in message


def test_the_setting_reaches_every_http_source_through_the_resource():
    market = MarketDataResource(
        capability="daily",
        polygon_api_key="k",
        tiingo_api_key="k",
        max_response_mb="3,tiingo=40",
    )
    settings = market.provider_settings()
    assert settings[RESPONSE_CAP_SETTING] == "3,tiingo=40"
    sources, skipped = build_sources(
        ["polygon", "tiingo", "simulated"], settings, "daily", SimulatedProvider
    )
    assert skipped == []
    caps = {s.name: getattr(s, "max_response_bytes", None) for s in sources}
    assert caps == {"polygon": 3 * MB, "tiingo": 40 * MB, "simulated": None}
    for source in sources:
        asyncio.run(source.aclose())


@pytest.mark.parametrize(
    ("text", "databento_mb", "polygon_mb"),
    [
        (None, 64, DEFAULT_MAX_RESPONSE_MB),  # SPY's definitions for a session are ~16-20 MB
        ("24", 24, 24),  # a number for every provider is Databento's too
        ("databento=128", 128, DEFAULT_MAX_RESPONSE_MB),
    ],
)
def test_databento_has_a_larger_cap_unless_one_is_set(text, databento_mb, polygon_mb):
    settings = {"DATABENTO_API_KEY": "k", "POLYGON_API_KEY": "k"}
    if text is not None:
        settings[RESPONSE_CAP_SETTING] = text
    sources, skipped = build_sources(
        ["databento", "polygon"], settings, "history", SimulatedProvider
    )
    assert skipped == []
    caps = {source.name: source.max_response_bytes for source in sources}
    assert caps == {"databento": int(databento_mb * MB), "polygon": int(polygon_mb * MB)}
    for source in sources:
        asyncio.run(source.aclose())


def test_a_malformed_setting_fails_the_build_instead_of_dropping_the_cap():
    with pytest.raises(ValueError, match=RESPONSE_CAP_SETTING):
        build_sources(["yahoo"], {RESPONSE_CAP_SETTING: "lots"}, "chain", SimulatedProvider)


# --- every provider client ---------------------------------------------------------------


async def _fetch(source: Any, capability: str) -> object:
    """The one call of `capability` a run makes, for AAPL."""
    if capability == "chain":
        return await source.option_chain("AAPL", SANDBOX_AS_OF)
    if capability == "profile":
        return await source.profile("AAPL")
    return await source.bars("AAPL", "1d", SANDBOX_AS_OF - timedelta(days=10), SANDBOX_AS_OF)


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
def test_every_client_reads_through_its_cap(clean_sandbox, provider):
    """Whatever the provider's request (GET or POST, symbol in the path, query or form), a
    runaway answer is refused by the cap `VOLARIS_MAX_RESPONSE_MB` gave its client."""
    clean_sandbox.set_faults(
        {"huge_body_symbols": ["AAPL"], "huge_body_mb": 4, "hang_s": SANDBOX_HANG_S}
    )
    capability = sorted(load_module(provider).CAPABILITIES)[0]
    settings = {**clean_sandbox.settings(), RESPONSE_CAP_SETTING: f"64,{provider}=1"}
    [source], _ = build_sources([provider], settings, capability, SimulatedProvider)

    async def fetch() -> None:
        try:
            await _fetch(source, capability)
        finally:
            await source.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(fetch())
    assert caught.value.category is ErrorCategory.BAD_DATA
    assert str(caught.value).startswith(f"{provider}: bad_data: response too large (over 1 MB")
    assert clean_sandbox.stats.faults["huge_body"] == 1
