"""Every request a provider sees takes a turn of its budget, not every call: a Yahoo chain is a
request per expiration (plus its cookie and crumb), and the budget must count what the sandbox
counts. Real client, real HTTP over loopback."""

from __future__ import annotations

import asyncio

from volaris_assets.providers import yahoo
from volaris_assets.providers.rate_limit import RateLimit
from volaris_assets.providers.resilience import ResilienceRegistry
from volaris_assets_tests.sandbox_fixtures import NEAR_PUTS, SANDBOX_AS_OF


async def chains(sandbox, registry: ResilienceRegistry, symbols: list[str]) -> None:
    chain = registry.chain([yahoo.create(sandbox.settings())])
    try:
        for symbol in symbols:
            await chain.option_chain(symbol, SANDBOX_AS_OF, NEAR_PUTS)
    finally:
        await chain.aclose()


def test_the_budget_counts_every_request_the_provider_sees(clean_sandbox):
    registry = ResilienceRegistry({"yahoo": RateLimit(per_second=1000, burst=1000)})
    asyncio.run(chains(clean_sandbox, registry, ["AAPL", "MSFT", "KO"]))
    seen = clean_sandbox.stats.count("yahoo")
    assert seen > 3  # several requests a chain: the case that matters
    assert registry.limiter("yahoo").acquired == seen
