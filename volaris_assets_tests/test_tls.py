"""The one TLS context of a process (volaris_assets/tls.py): shared by every provider client,
and still verifying, against a real HTTPS server on loopback whose CA no one trusts."""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import trustme

from volaris_assets.providers.http import build_client
from volaris_assets.tls import tls_context


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Quiet: a refused handshake is what the test is for."""


@pytest.fixture
def https_server() -> Iterator[tuple[trustme.CA, str]]:
    """An HTTPS server on loopback with a certificate from a throwaway CA (trustme)."""
    ca = trustme.CA()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield ca, f"https://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


async def _get(url: str, client: httpx.AsyncClient) -> httpx.Response:
    async with client:
        return await client.get(url)


def test_every_provider_client_shares_the_process_context():
    clients = [build_client(), build_client()]
    contexts = {id(client._transport._pool._ssl_context) for client in clients}
    assert contexts == {id(tls_context())}
    for client in clients:
        asyncio.run(client.aclose())


def test_the_shared_context_refuses_a_certificate_from_an_untrusted_ca(https_server):
    ca, url = https_server
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        asyncio.run(_get(url, build_client()))
    # The same server answers a client that trusts its CA: the refusal was the verification.
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    response = asyncio.run(_get(url, httpx.AsyncClient(verify=trusting)))
    assert response.json() == {"ok": True}
