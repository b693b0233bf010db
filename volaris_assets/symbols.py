"""One spelling of a ticker inside the platform, each provider's spelling at the edge.

Class shares are spelled three ways in the wild (BRK.B, BRK-B, BRK/B). The platform stores the
dotted Nasdaq/Wikipedia form; provider modules call `to_provider` when they build a request and
`normalize_symbol` on whatever the provider echoes back.

Indices whose options trade (SPX, XSP, NDX...) are stored under their bare name, the option
root's name. Providers mark an index: Schwab `$SPX`, Yahoo `^SPX`, Polygon/Massive `I:SPX` (in
its market-data paths: snapshots and aggregates; its reference endpoints take the bare root).
Only these names may carry a mark, so that `$AAPL` is still refused rather than guessed at.
"""

from __future__ import annotations

import re
from datetime import date

# A US listed ticker: 1-6 letters, optionally a class suffix of 1-2 letters.
_CANONICAL = re.compile(r"^[A-Z]{1,6}(\.[A-Z]{1,2})?$")
_SEPARATORS = re.compile(r"[-/. ]")

# Cash-settled index options the platform can ingest where a provider serves them.
INDEX_SYMBOLS = frozenset({"SPX", "XSP", "NDX", "RUT", "VIX", "DJX"})
# Provider -> the prefix it writes before an index name. Providers not listed have none.
_INDEX_PREFIX: dict[str, str] = {"schwab": "$", "yahoo": "^", "polygon": "I:"}
# The providers that serve index chains, bars and quotes: those above and the simulated market.
# Any other is never asked for an index: it would read "SPX" as a stock ticker.
INDEX_PROVIDERS = frozenset({*_INDEX_PREFIX, "simulated"})


def serves(provider: str, symbol: str) -> bool:
    """Whether `provider` may be asked for `symbol` (any symbol but an index, for most)."""
    return symbol not in INDEX_SYMBOLS or provider in INDEX_PROVIDERS


# Provider -> class-share separator. Providers not listed use the canonical dot.
_CLASS_SEPARATOR: dict[str, str] = {
    "yahoo": "-",
    "tiingo": "-",
    "schwab": "/",
}


class InvalidSymbol(ValueError):
    """Raised for text that cannot be a US equity ticker (SQL, emoji, empty, too long...)."""


def normalize_symbol(raw: str) -> str:
    """Return the canonical spelling of `raw` or raise `InvalidSymbol`.

    Lower case and any of the three class separators are accepted; anything else is refused
    rather than guessed at, because a wrong guess writes data under the wrong name.
    """
    original = str(raw).strip()
    text = original.upper()
    for mark in set(_INDEX_PREFIX.values()):
        if text.startswith(mark) and text[len(mark) :] in INDEX_SYMBOLS:
            return text[len(mark) :]
    parts = [p for p in _SEPARATORS.split(text) if p]
    candidate = ".".join(parts[:2]) if len(parts) == 2 else (parts[0] if len(parts) == 1 else "")
    # ASCII is checked on the input: "ﬁ".upper() is "FI" and "ß".upper() is "SS".
    if not original.isascii() or not _CANONICAL.match(candidate):
        shown = original[:24].encode("ascii", "backslashreplace").decode()
        raise InvalidSymbol(f"not a US ticker: {shown!r}")
    return candidate


def to_provider(symbol: str, provider: str) -> str:
    """The spelling `provider` expects for canonical `symbol`."""
    if symbol in INDEX_SYMBOLS:
        return _INDEX_PREFIX.get(provider, "") + symbol
    separator = _CLASS_SEPARATOR.get(provider, ".")
    return symbol.replace(".", separator)


def occ_root(symbol: str) -> str:
    """The OCC option root of `symbol`: class-share separators dropped (BRK.B -> BRKB), as the
    OCC does."""
    return symbol.replace(".", "").replace("-", "").replace("/", "")


def occ_symbol(symbol: str, expiration: date, right: str, strike: float) -> str:
    """The OCC option symbol (21 characters, root padded to 6), the contract's natural key."""
    return f"{occ_root(symbol):<6}{expiration:%y%m%d}{right}{round(strike * 1000):08d}"
