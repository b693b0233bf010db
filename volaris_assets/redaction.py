"""Keep secrets out of everything the platform writes down.

Resources register each secret value they resolve; anything that leaves the process as text
(error messages stored in `sync_stock_results`, metadata, notifications) goes through `redact`.
Provider modules already avoid putting keys in messages; this is the second line of defence.
"""

from __future__ import annotations

import re
import threading

_MIN_SECRET_LENGTH = 6
_lock = threading.Lock()
_secrets: set[str] = set()
# Credentials that travel in query strings or headers, whatever their value.
_PATTERNS = (
    re.compile(
        r"(?i)(api[_-]?key|apikey|token|access_token|refresh_token|secret|password|passwd|pwd)"
        r"=([^&\s'\"]+)"
    ),
    re.compile(r"(?i)(authorization:\s*)(bearer|basic|token)\s+\S+"),
    # Up to the end of the URL, not the quote or colon that may close it in a message.
    re.compile(
        r"https://(?:discord(?:app)?\.com)/api/webhooks/[^\s'\"<>)]+?(?=[':,;.]?(?:[\s'\"<>)]|$))"
    ),
)


def register(*values: str | None) -> None:
    """Remember secret values so `redact` can mask them wherever they appear."""
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= _MIN_SECRET_LENGTH)


def redact(text: str) -> str:
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    text = _PATTERNS[0].sub(lambda m: f"{m.group(1)}=***", text)
    text = _PATTERNS[1].sub(lambda m: f"{m.group(1)}{m.group(2)} ***", text)
    return _PATTERNS[2].sub("https://discord.com/api/webhooks/***", text)
