"""The quotes the sandbox's batch quote endpoints serve (Schwab, Polygon, Alpaca).

Every wire renders the same `SimulatedMarket.quote` at the sandbox clock, so a contract test can
compare what a client parsed with the simulated market directly, and moving the clock
(`Sandbox.set_as_of`) moves every provider's last price at once: that is how a test makes a
price cross a threshold.
"""

from __future__ import annotations

from volaris_assets.providers.simulated import SimulatedQuote
from volaris_assets.sandbox.protocol import Context


def requested(symbols: str) -> list[str]:
    """The raw symbols of a comma-separated `symbols`/`tickers` parameter, in order, once each."""
    return list(dict.fromkeys(filter(None, (s.strip() for s in symbols.split(",")))))


def listed_quotes(
    raw_symbols: list[str], ctx: Context, spelled_for: str | None = None
) -> list[tuple[str, SimulatedQuote]]:
    """(raw spelling, quote) for each listed symbol; unlisted ones are left out, as providers
    leave out (or list as errors) the symbols they do not know."""
    found = []
    for raw in raw_symbols:
        symbol = ctx.market.listed(raw, spelled_for)
        if symbol is not None:
            found.append((raw, ctx.market.simulated.quote(symbol, ctx.market.as_of)))
    return found


def epoch_ms(quote: SimulatedQuote) -> int:
    return int(quote.quote_ts.timestamp() * 1000)
