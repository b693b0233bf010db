"""What the sandbox served: counts by provider, path and outcome, and injected faults."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class SandboxStats:
    """Counts of requests by (provider, path, outcome) and of injected faults by kind.

    `outcome` is the HTTP status, or "hang"/"reset" for faults that never send a status.
    """

    requests: Counter[tuple[str, str, int | str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, provider: str, path: str, outcome: int | str, fault: str | None) -> None:
        with self.lock:
            self.requests[(provider, path, outcome)] += 1
            if fault:
                self.faults[fault] += 1

    def count(
        self, provider: str | None = None, path: str | None = None, outcome: int | str | None = None
    ) -> int:
        with self.lock:
            return sum(
                n
                for (p, pa, o), n in self.requests.items()
                if (provider is None or p == provider)
                and (path is None or pa == path)
                and (outcome is None or o == outcome)
            )

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.faults.clear()
