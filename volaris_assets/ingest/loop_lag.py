"""How long a run's event loop was held up: the telltale of timeouts that are ours.

Every request's timeout, hedge delay and budget turn is a timer on the run's one event loop.
While the loop is held up (CPU-bound work on it, a GIL another thread keeps, a box whose two
cores are busy elsewhere) those timers fire late, all at once: an answer that arrived in time
can be taken for a timeout, charged to the provider and counted by its circuit breaker, and a
request sent late crowds the provider's window. A heartbeat on the loop measures how late it
wakes; the run's largest delay goes into its metadata (`loop_lag_max_s`) and, past
`LAG_WARNING_S`, into its log, so that an operator reading `timeout` failures can tell a slow
provider from a starved process.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from volaris_assets.ingest.background import alongside

HEARTBEAT_S = 0.05
# Past this, a run says in its log that its own timers were late: a second is a tenth or
# more of every timeout the project sets, and far beyond what any healthy run shows.
LAG_WARNING_S = 1.0


class LoopLag:
    """The largest delay, in seconds, of a heartbeat on the loop while `watching` runs."""

    def __init__(self, every_s: float = HEARTBEAT_S) -> None:
        self.every_s = every_s
        self.max_s = 0.0

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                due = time.perf_counter() + self.every_s
                await asyncio.sleep(self.every_s)
                self.max_s = max(self.max_s, time.perf_counter() - due)

        async with alongside(beat()):
            yield


def lag_warning(label: str, max_s: float) -> str | None:
    """What a run whose loop was held up past `LAG_WARNING_S` logs; None otherwise."""
    if max_s < LAG_WARNING_S:
        return None
    return (
        f"{label}: this process held up its own event loop for up to {max_s:.1f} s (a loaded "
        "machine, or CPU-bound work on the loop): timeouts in this run may be this process's, "
        "not the provider's"
    )
