"""Where the symbol universes come from: shipped index lists, or the user's own list.

The index members come from pytickersymbols, which ships S&P 500, Nasdaq-100 and S&P 600
constituents offline (no scraping at run time, so a fresh install works without a network).
Its industry labels are not licensed GICS data; `gics_sector` maps them onto the 11 GICS sector
names by keyword, and anything unmatched is labelled "Unclassified" rather than guessed.
"""

from __future__ import annotations

import csv
import functools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from volaris_assets.symbols import InvalidSymbol, normalize_symbol

SP500 = "S&P 500"
SCAN_INDICES = ("S&P 500", "NASDAQ 100", "S&P 600")
# A universe larger than this is refused beyond the limit: a scan over it could not finish
# between two sessions on the small box this project targets.
MAX_UNIVERSE = 6000

_SECTOR_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("real estate", "reit"), "Real Estate"),
    (("utilit",), "Utilities"),
    (
        (
            "communication",
            "media",
            "telecom",
            "internet",
            "entertainment",
            "publishing",
            "advertis",
            "broadcast",
        ),
        "Communication Services",
    ),
    (
        (
            "information technology",
            "technology",
            "software",
            "semiconductor",
            "computer",
            "electronic",
        ),
        "Information Technology",
    ),
    (("health", "pharma", "biotech", "medical", "drug", "life science"), "Health Care"),
    (
        (
            "bank",
            "financ",
            "insurance",
            "invest",
            "capital market",
            "broker",
            "asset management",
            "exchange",
        ),
        "Financials",
    ),
    (("oil", "gas", "petroleum", "energy", "coal"), "Energy"),
    (
        (
            "chemical",
            "material",
            "mining",
            "metal",
            "steel",
            "packaging",
            "paper",
            "mineral",
            "gold",
        ),
        "Materials",
    ),
    (
        (
            "consumer staples",
            "food",
            "beverage",
            "tobacco",
            "household",
            "personal product",
            "grocer",
            "drinks",
        ),
        "Consumer Staples",
    ),
    (
        (
            "consumer discretionary",
            "retail",
            "automo",
            "apparel",
            "restaurant",
            "hotel",
            "leisure",
            "home construction",
            "homebuild",
            "casino",
            "travel",
        ),
        "Consumer Discretionary",
    ),
    (
        (
            "industrial",
            "aerospace",
            "defense",
            "machinery",
            "transport",
            "airline",
            "railroad",
            "manufactur",
            "conglomerate",
            "logistics",
            "construction",
            "equipment",
        ),
        "Industrials",
    ),
)
UNCLASSIFIED = "Unclassified"
_SECTOR_NAMES = {sector.lower() for _, sector in _SECTOR_RULES}

# Non-stock members are told apart by `sector` (the GICS sector an ETF tracks is its
# sub-industry): the bot can leave them out of sector tables without another column.
ETF_SECTOR = "ETF"
INDEX_SECTOR = "Index"
# The default ETF list: the most traded broad-market funds and the eleven Select Sector SPDRs.
# They join both universes like any stock (bars, chains, IV metrics, the wheel scan).
ETFS: tuple[tuple[str, str, str], ...] = (
    ("SPY", "SPDR S&P 500 ETF Trust", "S&P 500"),
    ("QQQ", "Invesco QQQ Trust", "Nasdaq-100"),
    ("IWM", "iShares Russell 2000 ETF", "Russell 2000"),
    ("DIA", "SPDR Dow Jones Industrial Average ETF Trust", "Dow Jones Industrial Average"),
    ("XLB", "Materials Select Sector SPDR Fund", "Materials"),
    ("XLC", "Communication Services Select Sector SPDR Fund", "Communication Services"),
    ("XLE", "Energy Select Sector SPDR Fund", "Energy"),
    ("XLF", "Financial Select Sector SPDR Fund", "Financials"),
    ("XLI", "Industrial Select Sector SPDR Fund", "Industrials"),
    ("XLK", "Technology Select Sector SPDR Fund", "Information Technology"),
    ("XLP", "Consumer Staples Select Sector SPDR Fund", "Consumer Staples"),
    ("XLRE", "Real Estate Select Sector SPDR Fund", "Real Estate"),
    ("XLU", "Utilities Select Sector SPDR Fund", "Utilities"),
    ("XLV", "Health Care Select Sector SPDR Fund", "Health Care"),
    ("XLY", "Consumer Discretionary Select Sector SPDR Fund", "Consumer Discretionary"),
)
# Names of the index symbols (`symbols.INDEX_SYMBOLS`) a user may add; not in the defaults,
# because only some providers serve them (see `with_extra`).
INDEX_NAMES = {
    "SPX": "S&P 500 Index",
    "XSP": "Mini-SPX Index",
    "NDX": "Nasdaq-100 Index",
    "RUT": "Russell 2000 Index",
    "VIX": "Cboe Volatility Index",
    "DJX": "Dow Jones Industrial Average (1/100)",
}


@dataclass(frozen=True)
class Constituent:
    symbol: str
    name: str | None
    sector: str
    sub_industry: str | None


@dataclass
class UniverseLoad:
    """A loaded universe plus every input row it refused, with the reason."""

    members: list[Constituent] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)

    def reject(self, reason: str, example: str) -> None:
        self.rejected[reason] += 1
        self.examples.setdefault(reason, example[:60])


def gics_sector(industries: list[str]) -> str:
    """The GICS sector an industry list belongs to, most general label first."""
    for label in reversed(industries):
        text = label.lower()
        for needles, sector in _SECTOR_RULES:
            if any(n in text for n in needles):
                return sector
    return UNCLASSIFIED


def _sub_industry(industries: list[str]) -> str | None:
    specific = [i for i in industries if i.lower() not in _SECTOR_NAMES]
    return specific[1] if len(specific) > 1 else (specific[0] if specific else None)


@functools.cache
def _index_rows(index: str) -> tuple[dict, ...]:
    from pytickersymbols import PyTickerSymbols  # deferred: parses a bundled YAML on import

    return tuple(PyTickerSymbols().get_stocks_by_index(index))


def index_members(indices: tuple[str, ...]) -> UniverseLoad:
    """Members of the union of `indices`, first occurrence wins for name and sector."""
    load = UniverseLoad()
    seen: set[str] = set()
    for index in indices:
        for row in _index_rows(index):
            try:
                symbol = normalize_symbol(row["symbol"])
            except InvalidSymbol:
                load.reject("invalid_symbol", str(row.get("symbol")))
                continue
            if symbol in seen:
                continue
            seen.add(symbol)
            industries = list(row.get("industries") or [])
            load.members.append(
                Constituent(
                    symbol, row.get("name"), gics_sector(industries), _sub_industry(industries)
                )
            )
    return load


def etf_members() -> list[Constituent]:
    """The default ETF list as universe members."""
    return [Constituent(symbol, name, ETF_SECTOR, tracks) for symbol, name, tracks in ETFS]


_SHIPPED_ETFS = {member.symbol: member for member in etf_members()}


def with_extra(load: UniverseLoad, extra: UniverseLoad, *, indices: bool) -> UniverseLoad:
    """`load` plus the members of `extra` it lacks, and the rejections of both.

    Index symbols join only where `indices` is set (the core universe of bars, chains and IV):
    their options settle in cash, so the wheel scan, which sells puts to be assigned shares,
    has nothing to scan in them. They, and the shipped ETFs, are named and labelled here
    because a user list carries no names (SPY listed in VOLARIS_UNIVERSE was "Unclassified").
    """
    merged = UniverseLoad(list(load.members), load.rejected + extra.rejected, dict(load.examples))
    for reason, example in extra.examples.items():
        merged.examples.setdefault(reason, example)
    present = {member.symbol for member in load.members}
    for member in extra.members:
        if member.symbol in present:
            continue
        if member.symbol in INDEX_NAMES:
            if not indices:
                continue
            member = Constituent(member.symbol, INDEX_NAMES[member.symbol], INDEX_SECTOR, None)
        elif member.symbol in _SHIPPED_ETFS:
            member = _SHIPPED_ETFS[member.symbol]
        if len(merged.members) >= MAX_UNIVERSE:
            merged.reject("over_limit", member.symbol)
            continue
        present.add(member.symbol)
        merged.members.append(member)
    return merged


def extra_symbols(text: str) -> str:
    """The settings validator of VOLARIS_UNIVERSE_EXTRA: a short hand-typed list, so one
    malformed entry is refused up front instead of becoming a rejection nobody reads."""
    try:
        load = parse_override(text)
    except FileNotFoundError:
        raise ValueError("the CSV file does not exist") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"the CSV file cannot be read ({type(error).__name__})") from None
    refused = {r: n for r, n in load.rejected.items() if r in ("invalid_symbol", "over_limit")}
    if refused:
        shown = ", ".join(f"{n} {r} (e.g. {load.examples[r]!r})" for r, n in refused.items())
        raise ValueError(f"has entries that are not tickers: {shown}")
    if not load.members:
        raise ValueError("names no symbol")
    return text


def parse_override(text: str) -> UniverseLoad:
    """The user's universe: a CSV path (a `symbol` column, or the first column) or a list.

    Every refused entry is counted by reason (invalid_symbol, duplicate, over_limit); nothing is
    silently dropped and a hostile entry never reaches SQL (symbols are validated here and bound
    as parameters downstream).
    """
    path = Path(text.strip())
    raw = _read_csv_symbols(path) if path.suffix.lower() == ".csv" else _split_list(text)
    load = UniverseLoad()
    seen: set[str] = set()
    for entry in raw:
        if not entry.strip():
            load.reject("empty", "")
            continue
        try:
            symbol = normalize_symbol(entry)
        except InvalidSymbol:
            load.reject("invalid_symbol", entry)
            continue
        if symbol in seen:
            load.reject("duplicate", symbol)
            continue
        if len(load.members) >= MAX_UNIVERSE:
            load.reject("over_limit", symbol)
            continue
        seen.add(symbol)
        load.members.append(Constituent(symbol, None, UNCLASSIFIED, None))
    return load


def _split_list(text: str) -> list[str]:
    return [part for chunk in text.replace(";", ",").splitlines() for part in chunk.split(",")]


# Header names of the ticker column a CSV may use: a header the reader did not know was read as
# a list of tickers and the header itself became one ("TICKER").
SYMBOL_HEADERS = ("symbol", "symbols", "ticker", "tickers")


def _read_csv_symbols(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"the universe list points at a missing file: {path}")
    with path.open(newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    named = [index for index, name in enumerate(header) if name in SYMBOL_HEADERS]
    if not named:  # a bare list of tickers
        return [row[0] if row else "" for row in rows]
    column = named[0]
    return [row[column] if len(row) > column else "" for row in rows[1:]]
