"""Pooled providers: one capability spread over every configured provider at once.

A `FallbackChain` sends every symbol to its primary and asks the others only when the primary
fails, so a scan runs at the primary's budget while the other providers' budgets sit idle. A
`PooledChain` gives each symbol a provider to start with, in proportion to the providers'
budgets, and from there it *is* the fallback chain rotated to start at that provider: a symbol
that fails where it was assigned is asked of every other provider in chain order (wrapping
around), exactly as in fallback mode, so a pooled run writes every symbol a fallback run would
given the same answers, and `Fetched.provider` still names the provider that answered.

Assignment: the provider whose queue would drain soonest with one more symbol,
`argmin (in_hand + 1) / rate`, where `in_hand` counts the symbols this pool has started on the
provider and not yet finished, and `rate` is its budget in requests/s. Ties go to the provider
earlier in the chain. With 16 symbols at once and budgets of 2, 5 and 1 requests/s that keeps 4,
10 and 2 symbols in hand: each provider has work queued in its token bucket, and each queue is
as long in seconds as the others (16 / 8 = 2 s), so they are busy in proportion and finish
together.

Why not weighted round robin (stride scheduling), which hands symbols out in fixed 2:5:1
proportions: the fan-out is a closed loop (a symbol starts only when another finishes), so a
provider that falls behind its nominal budget (a hang held to its timeout, a 429's pause,
retries, latency) would go on receiving its share while finishing fewer, and its queue would
grow until it held most of the concurrency and the others idled. Routing on what is in hand
gives a provider that slows down new symbols only as it finishes old ones, and the others take
up the rest. Not random either: random choice puts runs of symbols on one provider by chance.

Circuits: a provider whose circuit is open takes no new symbols. A half-open one takes a single
symbol (its probe) while none of this pool's symbols is on it, since a provider nobody asks
would never close again. When every circuit is open, symbols are still assigned by load and
fail as `circuit_open` through the chain, as in fallback mode.

Approximations, for now: `rate` is the configured budget (`ResilienceRegistry.rate_limits`),
not what other runs sharing it leave free; and a symbol counts as in hand at its assigned
provider until its whole chain is done, including fallbacks after it failed there (an
overcount only for a provider that is failing, which is then less attractive: the right way
round). An unlimited provider (the simulated market) drains at once and takes every symbol.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from volaris_assets.providers.circuit import CircuitState
from volaris_assets.providers.rate_limit import RateLimit
from volaris_assets.providers.resilience import (
    FallbackChain,
    Fetch,
    Fetched,
    GuardedSource,
    Refuse,
)

__all__ = ["PooledChain"]


class PooledChain(FallbackChain):
    """A fallback chain whose start moves from symbol to symbol (see the module docstring).

    `rates` are the providers' budgets in requests per second, by name: the weights symbols are
    spread by. Like `FallbackChain` it owns its sources, and a `rotated` copy shares them (and
    the count of symbols in hand).
    """

    def __init__(self, guarded_sources: Sequence[GuardedSource], rates: Mapping[str, float]):
        super().__init__(guarded_sources)
        unrated = [name for name in self.providers if not rates.get(name, 0.0) > 0]
        if unrated:
            raise ValueError(f"a pool needs a rate > 0 for every provider, missing: {unrated}")
        self._rates = {name: float(rates[name]) for name in self.providers}
        self._in_hand: Counter[str] = Counter()

    @classmethod
    def from_chain(cls, chain: FallbackChain, rate_limits: Mapping[str, RateLimit]) -> PooledChain:
        """The pool of `chain`'s guarded sources (so the same budgets and breakers), weighted by
        each provider's budget in `rate_limits` (a `ResilienceRegistry`'s)."""
        rates = {name: rate_limits[name].per_second for name in chain.providers}
        return cls(chain._sources, rates)

    def rotated(self, start_with: str | None) -> PooledChain:
        """The pool in the rotated chain's order.

        In a pool every provider is some symbols' first, so `start_with` (the retry sensor's
        "fallback first") can only decide ties and the order fallbacks take; the retried
        symbols are still spread over every provider rather than piled onto one.
        """
        pool = PooledChain(FallbackChain.rotated(self, start_with)._sources, self._rates)
        pool._in_hand = self._in_hand
        return pool

    @property
    def bar_batch_size(self) -> int | None:
        """None: a pool spreads symbols one by one over its providers' budgets."""
        return None

    async def _first_answer(self, fetch: Fetch, refuse: Refuse | None = None) -> Fetched:
        """The fallback chain rotated to start at the symbol's assigned provider answers."""
        provider = self._assign()
        self._in_hand[provider] += 1
        try:
            return await FallbackChain.rotated(self, provider)._first_answer(fetch, refuse)
        finally:
            self._in_hand[provider] -= 1

    def _assign(self) -> str:
        """The provider whose queue drains soonest with one more symbol (ties: chain order;
        among unlimited providers, the one with fewest in hand)."""
        open_to_new = [g.name for g in self._sources if self._takes_new(g)] or self.providers
        return min(
            open_to_new,
            key=lambda name: ((self._in_hand[name] + 1) / self._rates[name], self._in_hand[name]),
        )

    def _takes_new(self, guarded: GuardedSource) -> bool:
        """Closed circuit: yes; open: no; half-open: only as its probe, while none of ours
        is on it."""
        state = guarded.breaker.state
        if state is CircuitState.HALF_OPEN:
            return self._in_hand[guarded.name] == 0
        return state is CircuitState.CLOSED
