"""Remember which alerts were sent recently, so a sensor that fires every tick alerts once.

Sensor ticks run in fresh processes in production, so the memory must outlive the process: it
is a one-table SQLite file (shared safely by concurrent processes through SQLite's own locking).
Without a path it is an in-memory database that lives as long as the store, which is what tests
and one-off scripts want. Keys are stored as SHA-256 digests: alert text never lands on disk.

Wall-clock seconds (not a monotonic clock) are stored because the readers are other processes.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifier_sent (
    key_digest TEXT PRIMARY KEY,
    sent_at REAL NOT NULL
)
"""

# Take the key only if it is new or its last send is at least one window old. One statement,
# so two processes racing for the same alert cannot both win.
_CLAIM = """
INSERT INTO notifier_sent (key_digest, sent_at) VALUES (?, ?)
ON CONFLICT (key_digest) DO UPDATE SET sent_at = excluded.sent_at
WHERE notifier_sent.sent_at <= ?
"""


def alert_key(title: str, description: str, dedup_key: str | None) -> str:
    """The identity of an alert: the caller's key, or its text when no key is given."""
    identity = f"key:{dedup_key}" if dedup_key is not None else f"text:{title}\x00{description}"
    return hashlib.sha256(identity.encode("utf-8")).hexdigest()


class DedupStore:
    """Claims alert keys for a time window; a claim is released if the send then fails."""

    def __init__(self, path: str | None = None) -> None:
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            path or ":memory:", timeout=5.0, isolation_level=None, check_same_thread=False
        )
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute(_SCHEMA)

    def claim(self, key: str, now: float, window_s: float) -> bool:
        """True if the alert may be sent now (and records it as sent at `now`)."""
        with self._lock:
            claimed = self._conn.execute(_CLAIM, (key, now, now - window_s)).rowcount == 1
            # Expired rows can never suppress anything again; pruning keeps the file tiny.
            self._conn.execute(
                "DELETE FROM notifier_sent WHERE sent_at < ? AND key_digest != ?",
                (now - window_s, key),
            )
        return claimed

    def release(self, key: str, claimed_at: float) -> None:
        """Forget a claim whose send failed, so the next tick tries again instead of staying
        silent for a whole window. Only this claim is removed, not a newer one by another
        process."""
        with self._lock:
            self._conn.execute(
                "DELETE FROM notifier_sent WHERE key_digest = ? AND sent_at = ?",
                (key, claimed_at),
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
