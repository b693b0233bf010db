"""A live provider's option chain is the chain of the moment it answers, whatever instant it
was asked for.

Schwab, Polygon's snapshot, Yahoo and Robinhood serve only the current chain: asked for a past
snapshot window or session, they answer today's, and a run would store it under the past
instant (its underlying price, its expirations, DTE counted from today) and measure IV on it.
So a chain is refused as `no_data` when the instant asked for lies more than
`LIVE_CHAIN_TOLERANCE` of trading time before the provider's clock, the `Date` of its answers
(`HttpSource.clock`): once that clock is known, before anything is sent or reserved; the
requests already on their way when it was learned (at most the run's concurrency) on their
answers. The tolerance covers a window's run starting late and its
retries; nights and holidays do not count, so last night's close is still the current chain
before the open. The simulated market replays any instant and has no clock; a past session's
chains for IV history come from `iv_history_bootstrap` (Databento, Polygon's history).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from volaris_assets import calendar
from volaris_assets.providers.base import WHOLE_CHAIN, ChainFilter, ErrorCategory, ProviderError

LIVE_CHAIN_TOLERANCE = timedelta(minutes=45)


def past_chain(source: Any, as_of: datetime) -> ProviderError | None:
    """Why `source` cannot answer for `as_of` by its clock, or None when it can (or has no
    clock: the simulated market, or a provider that has not answered yet)."""
    clock: datetime | None = getattr(source, "clock", None)
    if clock is None:
        return None
    behind = calendar.market_time_between(as_of, clock)
    if behind <= LIVE_CHAIN_TOLERANCE:
        return None
    return ProviderError(
        ErrorCategory.NO_DATA,
        f"{source.name} serves only its current chain ({clock:%Y-%m-%d %H:%M} UTC by its clock), "
        f"{behind.total_seconds() / 3600:.1f} trading hours after the "
        f"{as_of.astimezone(calendar.NY):%Y-%m-%d %H:%M} ET asked for; only the simulated "
        "market replays a past chain",
        provider=source.name,
    )


async def current_chain(
    source: Any, symbol: str, as_of: datetime, only: ChainFilter = WHOLE_CHAIN
) -> pd.DataFrame:
    """`source`'s chain of `symbol`, refused when its answer shows it is not `as_of`'s."""
    frame = await source.option_chain(symbol, as_of, only)
    if (refused := past_chain(source, as_of)) is not None:
        raise refused
    return frame
