"""How long a provider's requests have lately taken to answer: what tells a hung request from a
slow one, and so how soon a hedge may go (`resilience.GuardedSource._answer`).

A fixed hedge delay has to sit above the slowest normal answer of every account and chain size
(2 s for Schwab), so against a provider answering in 150 ms a request hung in the last seconds
of a paced run holds the whole run up for 2 s while the budget has tokens to spare: at R = 100
in bench_scan, that is most of a 17-s run's tail. The hedge therefore goes after
HEDGE_OVER_P95 times the 95th percentile of the provider's last ANSWERS successful answers,
never sooner than MIN_HEDGE_S and never later than the configured delay, which stays in force
until MIN_ANSWERS answers are in. Only answers count: a failure or a timeout says nothing about
how long a good answer takes. Until the configured delay a hedge spends only budget nobody is
waiting for; past it, a queued turn (`GuardedSource._hedge_when_hung`).
"""

from __future__ import annotations

import threading
from collections import deque

# The answers remembered, and how many are needed before they are trusted over the configured
# delay.
ANSWERS = 256
MIN_ANSWERS = 20
# A request is taken for hung once it has waited this many times the usual slow answer
# (p95): twice p95 hedges about one request in a hundred that would have answered anyway.
HEDGE_OVER_P95 = 2.0
# The earliest a hedge goes: below it a hedge races answers still on the wire.
MIN_HEDGE_S = 0.25


class AnswerTimes:
    """One provider's recent answer times, in seconds, shared by every guard of it in the
    process, whichever thread's event loop runs it (the daemon runs quotes runs on threads)."""

    def __init__(self) -> None:
        self._seconds: deque[float] = deque(maxlen=ANSWERS)
        self._lock = threading.Lock()

    def record(self, seconds: float) -> None:
        with self._lock:
            self._seconds.append(seconds)

    def hedge_after(self, most_s: float) -> float:
        """How long a request may go unanswered before it is hedged: at most `most_s`."""
        with self._lock:
            ordered = sorted(self._seconds)
        if len(ordered) < MIN_ANSWERS:
            return most_s
        p95 = ordered[int(0.95 * (len(ordered) - 1))]
        return min(most_s, max(MIN_HEDGE_S, HEDGE_OVER_P95 * p95))
