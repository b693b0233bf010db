"""Post a message to a Discord webhook, honouring rate limits, without leaking the webhook URL.

Written on httpx rather than the `discord-webhook` package: that package only retries a 429
when the response carries a `Via` header, reads `retry_after` only from the JSON body, retries
without bound, does not retry 5xx or network errors, raises on any non-JSON reply (a 204, an
HTML 502), and is built on requests, whose exceptions and debug logs quote the full URL (token
included).

The webhook URL is a credential (anyone holding it can post). It is kept out of every log
record: this module never formats it, and `httpx`'s own INFO line ("HTTP Request: POST <url>")
passes through a filter that redacts every registered webhook URL, path and token.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from volaris_assets.notify.embeds import Message
from volaris_assets.tls import tls_context

logger = logging.getLogger(__name__)

REDACTED = "[redacted]"
# Secrets shorter than this are not redacted as substrings: they would mangle ordinary words.
_MIN_SECRET_LENGTH = 8
_MAX_ERROR_TEXT = 200


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Worst case a send blocks for about
    (max_retries + 1) * timeout_s + the waits, so a sensor tick stays bounded."""

    max_retries: int = 3
    timeout_s: float = 5.0
    backoff_s: float = 0.5
    # A longer 429 wait (Discord's global or Cloudflare limits) is not worth blocking a tick.
    max_retry_after_s: float = 30.0


@dataclass(frozen=True)
class DeliveryResult:
    """What happened; `detail` is safe to log (status codes and error class names only)."""

    delivered: bool
    attempts: int
    detail: str


@dataclass(frozen=True)
class _Attempt:
    delivered: bool
    retryable: bool
    detail: str
    retry_after: float | None = None


class SecretRedactor(logging.Filter):
    """A logging filter (and string scrubber) that replaces registered secrets."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def register_url(self, url: str) -> None:
        """Register the URL in the spellings a log line or error text could carry it."""
        forms = {url, url.strip()}
        try:
            parsed = httpx.URL(url.strip())
        except httpx.InvalidURL:
            parsed = None
        if parsed is not None:
            forms |= {str(parsed), parsed.path, parsed.path.rstrip("/").rsplit("/", 1)[-1]}
        self._secrets |= {form for form in forms if len(form) >= _MIN_SECRET_LENGTH}

    def redact(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


REDACTOR = SecretRedactor()
# httpx logs every request's full URL at INFO on this exact logger name.
logging.getLogger("httpx").addFilter(REDACTOR)


def deliver(
    url: str,
    message: Message,
    policy: RetryPolicy,
) -> DeliveryResult:
    """Post `message`; retry 429 (after its retry_after), 5xx and network errors."""
    REDACTOR.register_url(url)
    # Without wait=true Discord answers 204 before saving and may drop the message silently;
    # with it, a 2xx means the message exists. Merged with any query the URL has (thread_id).
    target = httpx.URL(url).copy_merge_params({"wait": "true"})
    REDACTOR.register_url(str(target))
    with httpx.Client(timeout=policy.timeout_s, verify=tls_context()) as client:
        attempts = 1
        outcome = _post_once(client, target, message)
        while not outcome.delivered and outcome.retryable and attempts <= policy.max_retries:
            wait = outcome.retry_after
            if wait is None:
                wait = policy.backoff_s * 2 ** (attempts - 1)
            if wait > policy.max_retry_after_s:
                detail = f"{outcome.detail}; retry_after {wait:g}s exceeds the cap"
                return DeliveryResult(False, attempts, detail)
            logger.debug("Discord webhook: %s; retrying in %.2fs", outcome.detail, wait)
            time.sleep(wait)
            attempts += 1
            outcome = _post_once(client, target, message)
    return DeliveryResult(outcome.delivered, attempts, outcome.detail)


def _post_once(client: httpx.Client, url: httpx.URL, message: Message) -> _Attempt:
    try:
        response = _send(client, url, message)
    except httpx.UnsupportedProtocol:
        return _Attempt(False, False, "webhook URL has an unsupported scheme")
    except httpx.TimeoutException as exc:
        return _Attempt(False, True, f"timeout ({type(exc).__name__})")
    except httpx.TransportError as exc:
        return _Attempt(False, True, f"connection error ({type(exc).__name__})")
    return _classify(response)


def _send(client: httpx.Client, url: httpx.URL, message: Message) -> httpx.Response:
    if not message.files:
        return client.post(url, json=message.payload)
    # Discord's upload format: the JSON as a `payload_json` part, the files as `files[n]`.
    files = [
        (f"files[{index}]", (name, content, _content_type(name)))
        for index, (name, content) in enumerate(message.files)
    ]
    return client.post(url, data={"payload_json": json.dumps(message.payload)}, files=files)


def _classify(response: httpx.Response) -> _Attempt:
    status = response.status_code
    if 200 <= status < 300:
        return _Attempt(True, False, f"HTTP {status}")
    if status == 429:
        return _Attempt(False, True, "HTTP 429 rate limited", _retry_after(response))
    if status >= 500:
        return _Attempt(False, True, f"HTTP {status}")
    return _Attempt(False, False, f"HTTP {status}{_discord_error(response)}")


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait: Discord's JSON `retry_after` (sub-second precision) first, then the
    `Retry-After` header (seconds or an HTTP date)."""
    body = _json_body(response)
    candidates = [body.get("retry_after"), response.headers.get("Retry-After")]
    for value in candidates:
        seconds = _seconds(value)
        if seconds is not None:
            return seconds
    return None


def _seconds(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        pass
    try:
        wait = parsedate_to_datetime(str(value)) - datetime.now(UTC)
    except (TypeError, ValueError):
        return None
    return max(0.0, wait.total_seconds())


def _discord_error(response: httpx.Response) -> str:
    """Discord's error code and message (e.g. 10015 Unknown Webhook), scrubbed of secrets."""
    body = _json_body(response)
    if "code" not in body and "message" not in body:
        return ""
    text = f"{body.get('code', '')} {body.get('message', '')}".strip()
    return f" ({REDACTOR.redact(text)[:_MAX_ERROR_TEXT]})"


def _json_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _content_type(filename: str) -> str:
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"
