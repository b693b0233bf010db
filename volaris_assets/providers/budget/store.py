"""What a budget backend does: four short calls, each one atomic on the backend's own clock.

Stores are blocking on purpose. `ProviderBudget` calls them on a thread of its own, so a store
never holds an event-loop object and one budget serves every `asyncio.run` of a process (the
project runs its loop on a thread of its own and starts a fresh loop per run step); a
`redis.asyncio` client or an async SQLAlchemy engine would be bound to the first loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from volaris_assets.providers.budget.gcra import Cell, Grant, Limit


@dataclass(frozen=True)
class Stored:
    """One provider as a store keeps it: the pace it was last asked for (None when it was
    only ever paused) and its state."""

    provider: str
    limit: Limit | None
    cell: Cell


class Store(Protocol):
    """A place where every process of a deployment finds the same budget.

    `kind` ("postgresql", "redis", "sqlite" or "memory") and `where` (host, port and database,
    or a file path: never a password) say which one, in logs and in `snapshot()`.
    """

    kind: str
    where: str

    def reserve(self, provider: str, limit: Limit, max_wait: float | None) -> Grant:
        """`gcra.reserve` on the stored cell, atomically, at the backend's time."""
        ...

    def pause(self, provider: str, seconds: float) -> float:
        """Hold the provider back for `seconds` from now (never shortening a pause already
        set); returns the resulting `paused_until` on the backend's clock."""
        ...

    def paused_until(self, provider: str) -> float:
        """The provider's `paused_until` (0 when never paused)."""
        ...

    def cells(self) -> tuple[float, list[Stored]]:
        """The backend's time now and every provider it holds."""
        ...

    def close(self) -> None: ...
