"""What the sandbox served: counts by provider, path and outcome, and injected faults."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field

# Answer times kept per provider: enough for a benchmark's hour at a paid plan's pace.
MAX_ARRIVALS = 500_000


@dataclass
class SandboxStats:
    """Counts of requests by (provider, path, outcome) and of injected faults by kind.

    `outcome` is the HTTP status, or "hang"/"reset" for faults that never send a status.
    """

    requests: Counter[tuple[str, str, int | str]] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    arrivals: defaultdict[str, deque[float]] = field(
        default_factory=lambda: defaultdict(lambda: deque(maxlen=MAX_ARRIVALS))
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(
        self,
        provider: str,
        path: str,
        outcome: int | str,
        fault: str | None,
        arrived: float | None = None,
    ) -> None:
        """Count one request; `arrived` (monotonic) is when it came in, for `busiest`."""
        with self.lock:
            self.requests[(provider, path, outcome)] += 1
            self.arrivals[provider].append(time.monotonic() if arrived is None else arrived)
            if fault:
                self.faults[fault] += 1

    def busiest(self, provider: str, window_s: float) -> int:
        """The most requests `provider` received in any `window_s` seconds: what a provider
        counting per window would have seen at worst."""
        with self.lock:
            times = sorted(self.arrivals[provider])
        most, start = 0, 0
        for end, arrived in enumerate(times):
            while arrived - times[start] >= window_s:
                start += 1
            most = max(most, end - start + 1)
        return most

    def window_refusals(self, provider: str) -> int:
        """429s the provider's own limit issued (not the injected `rate_limit` faults)."""
        with self.lock:
            refused = sum(n for (p, _, o), n in self.requests.items() if p == provider and o == 429)
            injected = self.faults["rate_limit"] if refused else 0
        return refused - injected

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
            self.arrivals.clear()
