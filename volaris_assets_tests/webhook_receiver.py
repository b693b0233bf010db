"""A loopback stand-in for Discord's webhook endpoint, for tests that send real HTTP.

`WebhookReceiver` is an HTTP server on 127.0.0.1 (free port, background thread) that records
every POST (path, headers, JSON body or multipart parts with their files) and answers as Discord
does: 204, or 200 with a message object when the query has `wait=true`. It can be told to
misbehave for the next N requests: answer 429 with Discord's rate-limit body and `Retry-After`,
answer 5xx, or hang without answering so the client times out.

    with WebhookReceiver() as receiver:
        receiver.rate_limit_next(1, retry_after=0.2)
        post_to(receiver.webhook_url())
        assert len(receiver.requests) == 2
"""

from __future__ import annotations

import email.parser
import email.policy
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Part:
    """One multipart form part: `payload_json` or an uploaded file (`files[n]`)."""

    name: str
    filename: str | None
    content_type: str
    content: bytes


@dataclass(frozen=True)
class RecordedRequest:
    """A POST as the receiver saw it, and the status it answered (None: it hung)."""

    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    json: Any
    parts: tuple[Part, ...]
    status: int | None
    # When it arrived (epoch s): what an end-to-end latency is measured to.
    received_at: float = field(default_factory=time.time)

    @property
    def payload(self) -> Any:
        """The webhook payload whichever way it came: JSON body or `payload_json` part."""
        if self.json is not None:
            return self.json
        for part in self.parts:
            if part.name == "payload_json":
                return json.loads(part.content)
        return None

    @property
    def files(self) -> dict[str, Part]:
        """Uploaded files by filename."""
        return {p.filename: p for p in self.parts if p.filename is not None}


@dataclass(frozen=True)
class _Fault:
    status: int | None  # None: hang
    retry_after: float = 0.0
    in_body: bool = True
    in_header: bool = True
    hang_s: float = 0.0


@dataclass
class _State:
    requests: list[RecordedRequest] = field(default_factory=list)
    faults: deque[_Fault] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)


class WebhookReceiver:
    """Start with `with WebhookReceiver() as r:` (or `start()` / `stop()`)."""

    def __init__(self) -> None:
        self._state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self._state))
        self._server.daemon_threads = True
        self._server.block_on_close = False
        # A short poll interval makes stop() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="webhook-receiver",
            daemon=True,
        )
        # A realistic credential, so tests can check that it never leaks.
        self.token = secrets.token_urlsafe(51)
        self.webhook_id = "1234567890123456789"

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def webhook_url(self) -> str:
        """A Discord-shaped webhook URL (`/api/webhooks/<id>/<token>`) on this server."""
        return f"{self.base_url}/api/webhooks/{self.webhook_id}/{self.token}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._state.lock:
            return list(self._state.requests)

    def rate_limit_next(
        self,
        count: int = 1,
        *,
        retry_after: float = 0.2,
        in_body: bool = True,
        in_header: bool = True,
    ) -> None:
        """Answer the next `count` requests 429 with `retry_after` seconds in Discord's JSON
        body and/or the `Retry-After` header."""
        self._queue(count, _Fault(429, retry_after, in_body, in_header))

    def fail_next(self, count: int = 1, *, status: int = 500) -> None:
        """Answer the next `count` requests with `status` and a non-JSON body."""
        self._queue(count, _Fault(status))

    def hang_next(self, count: int = 1, *, seconds: float = 10.0) -> None:
        """Hold the next `count` requests `seconds` without answering, then drop them."""
        self._queue(count, _Fault(None, hang_s=seconds))

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._state.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _queue(self, count: int, fault: _Fault) -> None:
        with self._state.lock:
            self._state.faults.extend([fault] * count)


def _handler_for(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            # Discord answers 204, or 200 with the created message when asked to wait.
            waited = "wait=true" in urlsplit(self.path).query.lower()
            with state.lock:
                fault = state.faults.popleft() if state.faults else None
                status = fault.status if fault else (200 if waited else 204)
                state.requests.append(self._record(body, status))
                message_id = str(len(state.requests))
            if fault is None and waited:
                message = {"id": message_id, "attachments": []}
                self._answer(200, json.dumps(message).encode(), "application/json")
            elif fault is None:
                self._answer(204)
            elif fault.status is None:
                state.released.wait(fault.hang_s)
                self.close_connection = True
            elif fault.status == 429:
                self._rate_limited(fault)
            else:
                self._answer(fault.status, b"<html>upstream error</html>", "text/html")

        def log_message(self, format: str, *args: Any) -> None:
            """Silence the default stderr access log; tests read `requests` instead."""

        def _record(self, body: bytes, status: int | None) -> RecordedRequest:
            split = urlsplit(self.path)
            content_type = self.headers.get("Content-Type", "")
            parsed_json = json.loads(body) if content_type.startswith("application/json") else None
            parts = _multipart(content_type, body) if content_type.startswith("multipart/") else ()
            return RecordedRequest(
                path=split.path,
                query=split.query,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
                json=parsed_json,
                parts=parts,
                status=status,
            )

        def _rate_limited(self, fault: _Fault) -> None:
            body = {"message": "You are being rate limited.", "global": False}
            if fault.in_body:
                body["retry_after"] = fault.retry_after
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.in_header else {}
            self._answer(429, json.dumps(body).encode(), "application/json", headers)

        def _answer(
            self,
            status: int,
            body: bytes = b"",
            content_type: str | None = None,
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            if content_type:
                self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def _multipart(content_type: str, body: bytes) -> tuple[Part, ...]:
    """Split a multipart/form-data body with the stdlib email parser (cgi is gone in 3.13)."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    return tuple(
        Part(
            name=part.get_param("name", header="content-disposition") or "",
            filename=part.get_filename(),
            content_type=part.get_content_type(),
            content=part.get_payload(decode=True) or b"",
        )
        for part in message.iter_parts()
    )
