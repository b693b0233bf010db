"""Per-provider request limits the sandbox enforces (answered with 429 + `Retry-After`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """At most `requests` per `per_s` seconds (a sliding window)."""

    requests: int
    per_s: float


class SlidingWindow:
    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.times: deque[float] = deque()
        self.lock = threading.Lock()

    def admit(self) -> float | None:
        """None when admitted, else seconds until a slot frees up."""
        now = time.monotonic()
        with self.lock:
            wait = self._wait(now)
            if wait == 0.0:
                self.times.append(now)
                return None
            return wait

    def wait(self) -> float:
        """Seconds until a request would be admitted (0 when there is room), admitting none."""
        with self.lock:
            return self._wait(time.monotonic())

    def _wait(self, now: float) -> float:
        while self.times and now - self.times[0] >= self.limit.per_s:
            self.times.popleft()
        if len(self.times) < self.limit.requests:
            return 0.0
        return self.limit.per_s - (now - self.times[0])
