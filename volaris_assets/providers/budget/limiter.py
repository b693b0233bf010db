"""One provider's share of the shared budget, in the shape a guarded source asks for.

`GuardedSource` speaks to a `rate_limit.Limiter`; this adapter makes the shared budget one, so
the resilience layer does not care whether the budget is this process's or everyone's, and a
chain carries its work's priority (fresh or bulk) down to every request it makes.
"""

from __future__ import annotations

from volaris_assets.providers.budget import Priority, ProviderBudget


class BudgetLimiter:
    """`provider`'s budget at `priority`; `acquired` counts the requests this adapter let go."""

    def __init__(self, budget: ProviderBudget, provider: str, priority: Priority) -> None:
        self.budget = budget
        self.provider = provider
        self.priority = priority
        self.acquired = 0.0

    @property
    def rate(self) -> float:
        return self.budget.limits[self.provider].rate

    async def acquire(self, *, longest_pause_s: float | None = None) -> None:
        await self.budget.acquire(self.provider, self.priority, longest_pause_s=longest_pause_s)
        self.acquired += 1

    async def spare(self) -> bool:
        granted = await self.budget.try_acquire(self.provider)
        self.acquired += granted
        return granted

    async def pause(self, seconds: float) -> None:
        await self.budget.pause(self.provider, seconds)
