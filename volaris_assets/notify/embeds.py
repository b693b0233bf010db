"""Build a Discord webhook message (one embed, optional files) that Discord will accept.

Discord rejects a whole message with HTTP 400 when any part exceeds its limits, so an alert with
a long error text or many fields would be lost entirely. Everything here is clipped to the
documented limits instead, and anything dropped is counted in the embed footer.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any


class Severity(enum.StrEnum):
    """How bad the news is; decides the colour bar of the embed."""

    INFO = "info"
    SUCCESS = "success"
    WARNING = "warning"
    ERROR = "error"


SEVERITY_COLOURS: Mapping[Severity, int] = {
    Severity.INFO: 0x3498DB,
    Severity.SUCCESS: 0x2ECC71,
    Severity.WARNING: 0xF39C12,
    Severity.ERROR: 0xE74C3C,
}

# Discord's documented limits (characters unless noted).
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
USERNAME_LIMIT = 80
ATTACHMENT_COUNT_LIMIT = 10
# Discord takes 10 MB of files on an ordinary server; a larger file is named, not attached.
ATTACHMENT_BYTES_LIMIT = 8 * 1024 * 1024

ELLIPSIS = "…"
# Discord refuses empty field names and values; a zero-width space renders as blank.
BLANK = "\u200b"


@dataclass(frozen=True)
class Message:
    """A ready-to-post webhook message: the JSON payload and the files to upload with it."""

    payload: dict[str, Any]
    files: tuple[tuple[str, bytes], ...] = ()


def file_attachment(path: str) -> bytes | None:
    """A file a run wrote, to attach: None when it is too large or this process cannot read
    it (a run on another host wrote it, or it was cleaned up); the caller names the path."""
    try:
        file = Path(path)
        if file.stat().st_size <= ATTACHMENT_BYTES_LIMIT:
            return file.read_bytes()
    except OSError:
        pass
    return None


def build_message(
    title: str,
    description: str,
    *,
    severity: Severity,
    username: str,
    timestamp: datetime,
    fields: Mapping[str, str] | None = None,
    url: str | None = None,
    attachments: Mapping[str, bytes] | None = None,
    notes: list[str] | None = None,
) -> Message:
    """Assemble the payload; files are referenced as `files[n]` as Discord's upload API expects.
    `notes` go in the footer (e.g. that the data is simulated)."""
    kept_files = list((attachments or {}).items())[:ATTACHMENT_COUNT_LIMIT]
    notes = list(notes or [])
    if attachments and len(attachments) > len(kept_files):
        notes.append(f"{len(attachments) - len(kept_files)} attachment(s) omitted")
    embed = build_embed(title, description, severity=severity, fields=fields, url=url, notes=notes)
    embed["timestamp"] = timestamp.isoformat()
    payload: dict[str, Any] = {
        "username": clip(username, USERNAME_LIMIT),
        "embeds": [embed],
        # Alert text may quote user or provider strings; never let it ping anyone.
        "allowed_mentions": {"parse": []},
    }
    if kept_files:
        payload["attachments"] = [
            {"id": index, "filename": name} for index, (name, _) in enumerate(kept_files)
        ]
    return Message(payload=payload, files=tuple(kept_files))


def build_embed(
    title: str,
    description: str,
    *,
    severity: Severity,
    fields: Mapping[str, str] | None = None,
    url: str | None = None,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """One embed within every per-part limit and the 6000-character total.

    Fields take priority over the description: they carry the structured facts (counts,
    symbols, run ids), so when the total is exceeded the description is cut first and fields
    are dropped from the end only if they alone do not fit.
    """
    clipped_title = clip(title, TITLE_LIMIT)
    all_fields = [
        {
            "name": clip(str(name), FIELD_NAME_LIMIT) or BLANK,
            "value": clip(str(value), FIELD_VALUE_LIMIT) or BLANK,
            "inline": True,
        }
        for name, value in (fields or {}).items()
    ]
    kept = all_fields[:FIELD_COUNT_LIMIT]
    footer = _footer(notes or [], len(all_fields) - len(kept))
    while kept and _size(clipped_title, footer, kept) > EMBED_TOTAL_LIMIT:
        kept.pop()
        footer = _footer(notes or [], len(all_fields) - len(kept))
    room = EMBED_TOTAL_LIMIT - _size(clipped_title, footer, kept)
    embed: dict[str, Any] = {"color": SEVERITY_COLOURS[Severity(severity)]}
    if clipped_title:
        embed["title"] = clipped_title
    clipped_description = clip(description, min(DESCRIPTION_LIMIT, room))
    if clipped_description:
        embed["description"] = clipped_description
    if url and url.startswith(("https://", "http://")):
        # Discord rejects the whole message for a malformed embed URL; a bad link is dropped.
        embed["url"] = url
    if kept:
        embed["fields"] = kept
    if footer:
        embed["footer"] = {"text": footer}
    return embed


def clip(text: str, limit: int) -> str:
    """Cut `text` to `limit` characters, marking the cut with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 0:
        return ""
    return text[: limit - 1] + ELLIPSIS


def _size(title: str, footer: str, fields: list[dict[str, Any]]) -> int:
    return len(title) + len(footer) + sum(len(f["name"]) + len(f["value"]) for f in fields)


def _footer(notes: list[str], omitted_fields: int) -> str:
    parts = [*notes]
    if omitted_fields:
        parts.append(f"{omitted_fields} field(s) omitted")
    return clip("; ".join(parts), FOOTER_LIMIT)
