"""When the shared budget cannot be reached: the next store down, at its share of the pace.

A `Failover` holds the stores in order (the configured shared one, the host's SQLite file, this
process's memory), each with the fraction of every limit it paces at. A call goes to the first
store not known to be down; a store that fails is skipped for `retry_s` and then tried again by
the next call, so the budget returns to the shared store on its own once it answers. The last
store (memory) cannot fail. Why the shares keep several processes under the limit is in the
package docstring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from volaris_assets.providers.budget.gcra import Cell, Grant, Limit, reserve
from volaris_assets.providers.budget.store import Store, Stored
from volaris_assets.redaction import redact

T = TypeVar("T")
logger = logging.getLogger(__name__)


class MemoryStore:
    """The budget in this process only: the last resort, which cannot fail."""

    kind = "memory"
    where = "this process"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cells: dict[str, Cell] = {}
        self._limits: dict[str, Limit] = {}

    def reserve(self, provider: str, limit: Limit, max_wait: float | None) -> Grant:
        with self._lock:
            cell = self._cells.setdefault(provider, Cell())
            grant = reserve(cell, self._clock(), limit, max_wait)
            if grant.admitted:
                self._limits[provider] = limit
            return grant

    def pause(self, provider: str, seconds: float) -> float:
        with self._lock:
            cell = self._cells.setdefault(provider, Cell())
            cell.paused_until = max(cell.paused_until, self._clock() + seconds)
            return cell.paused_until

    def paused_until(self, provider: str) -> float:
        with self._lock:
            return self._cells.get(provider, Cell()).paused_until

    def cells(self) -> tuple[float, list[Stored]]:
        with self._lock:
            found = [
                Stored(provider, self._limits.get(provider), Cell(**vars(cell)))
                for provider, cell in self._cells.items()
            ]
            return self._clock(), found

    def close(self) -> None:
        pass


@dataclass
class Tier:
    """A store, the fraction of each limit it paces at, and whether it is the shared one."""

    store: Store
    share: float
    shared: bool
    down_until: float = 0.0
    last_error: str = ""


class Failover:
    """Runs each budget call on the first store that answers (see the module docstring).

    A provider moved down to a fallback is logged once, as a warning naming the store that
    failed (kind and host or file, never a password) and the share it is paced at now; its
    return to the first store is logged once too.
    """

    def __init__(
        self, tiers: Sequence[Tier], retry_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not tiers or not isinstance(tiers[-1].store, MemoryStore):
            raise ValueError("the last fallback must be the in-memory store")
        self.tiers = tuple(tiers)
        self.retry_s = retry_s
        self._clock = clock
        self._lock = threading.Lock()
        self._serving: dict[str, Tier] = {}

    def run(self, provider: str | None, work: Callable[[Store, float], T]) -> tuple[T, Tier]:
        """`work(store, share)` on the first store that answers, and the tier it ran on.
        `provider` (None for calls about every provider) is what a move is logged for."""
        for tier in self.tiers[:-1]:
            if tier.down_until > self._clock():
                continue
            try:
                result = work(tier.store, tier.share)
            except Exception as error:  # noqa: BLE001 - any failure: the next store paces
                with self._lock:
                    tier.down_until = self._clock() + self.retry_s
                    tier.last_error = _described(error)
                continue
            return self._served(provider, tier, result)
        last = self.tiers[-1]
        return self._served(provider, last, work(last.store, last.share))

    def close(self) -> None:
        for tier in self.tiers:
            tier.store.close()

    def passed_over(self, tier: Tier) -> str:
        """The stores above `tier` and why each failed ("" for the first): what the warning
        and the doctor say about a fallback."""
        return "; ".join(
            f"{above.store.kind} at {above.store.where} ({above.last_error or 'down'})"
            for above in self.tiers[: self.tiers.index(tier)]
        )

    def _served(self, provider: str | None, tier: Tier, result: T) -> tuple[T, Tier]:
        if provider is not None:
            with self._lock:
                before = self._serving.get(provider, self.tiers[0])
                self._serving[provider] = tier
            if tier is not before:
                self._log_move(provider, tier)
        return result, tier

    def _log_move(self, provider: str, tier: Tier) -> None:
        if tier is self.tiers[0]:
            logger.info(
                "provider budget: %s paced by %s at %s again",
                provider,
                tier.store.kind,
                tier.store.where,
            )
            return
        failed = self.passed_over(tier)
        logger.warning(
            "provider budget unreachable: %s. %s is paced by %s at %s at %.0f%% of its limit "
            "until it answers again (tried every %g s)",
            failed,
            provider,
            tier.store.kind,
            tier.store.where,
            tier.share * 100,
            self.retry_s,
        )


def _described(error: Exception) -> str:
    """The error's type and first line, for the warning: "OperationalError" alone does not
    tell a locked SQLite file from a missing folder, or a refused connection from a bad
    password. Redacted, as a driver may echo the URL it was given."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    return redact(f"{type(error).__name__}: {first_line}"[:200]).removesuffix(": ")
