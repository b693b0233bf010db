"""The symbol universes: S&P 500 constituents and the wider option-scan universe.

Both carry the default ETF list and the symbols of VOLARIS_UNIVERSE_EXTRA on top of their index
lists (VOLARIS_UNIVERSE replaces the index lists and the ETFs, never the extra symbols). The
`in_sp500` flag marks the core universe every bar, chain and IV asset covers: the S&P 500 plus
those additions (ETFs and indices are told apart by `sector`).
"""

import os

import dagster as dg
import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import Connection

from volaris_assets.ingest.asset_support import OWNERS, asset_metadata
from volaris_assets.providers.simulated import SimulatedMarket
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.runtime import peak_rss_mb
from volaris_assets.universe.constituents import (
    SCAN_INDICES,
    SP500,
    UniverseLoad,
    etf_members,
    index_members,
    parse_override,
    with_extra,
)
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now


class UniverseConfig(dg.Config):
    override: str | None = Field(
        default=None,
        description="A CSV path or comma-separated symbols replacing the shipped index list "
        "and the ETF list (defaults to the VOLARIS_UNIVERSE environment variable).",
    )
    extra: str | None = Field(
        default=None,
        description="A CSV path or comma-separated symbols added to the universe (defaults to "
        "the VOLARIS_UNIVERSE_EXTRA environment variable).",
    )


def _load(config: UniverseConfig, indices: tuple[str, ...], *, core: bool) -> UniverseLoad:
    """The override, else the index lists plus the ETF list; then the extra symbols. Index
    symbols, wherever they are listed, join only the `core` universe."""
    override = config.override or os.environ.get("VOLARIS_UNIVERSE")
    if override:
        load = with_extra(UniverseLoad(), parse_override(override), indices=core)
    else:
        load = with_extra(index_members(indices), UniverseLoad(etf_members()), indices=core)
    extra = config.extra or os.environ.get("VOLARIS_UNIVERSE_EXTRA")
    return with_extra(load, parse_override(extra), indices=core) if extra else load


def _source(config: UniverseConfig) -> str:
    """Where the members came from, for the metadata the collapse check compares."""
    base = (
        "VOLARIS_UNIVERSE override"
        if config.override or os.environ.get("VOLARIS_UNIVERSE")
        else "pytickersymbols + ETF list"
    )
    extra = config.extra or os.environ.get("VOLARIS_UNIVERSE_EXTRA")
    return f"{base} + VOLARIS_UNIVERSE_EXTRA" if extra else base


def _write_universe(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    load: UniverseLoad,
    flag: str,
    source: str,
) -> dg.MaterializeResult:
    """Upsert members with `flag` set, clear the flag on symbols that left, record rejections.

    Only `flag` and reference columns are touched, so the two universe assets never overwrite
    each other's membership.
    """
    now = utc_now()
    ranks = _liquidity_ranks([m.symbol for m in load.members])
    members = {m.symbol for m in load.members}

    def write(conn: Connection) -> list[str]:
        """The whole universe in one transaction (run again as a whole after a reconnect);
        returns the symbols that left."""
        existing = {row.symbol: row for row in conn.execute(sa.select(tables.tickers))}
        rows = []
        for member in load.members:
            old = existing.get(member.symbol)
            rows.append(
                {
                    "symbol": member.symbol,
                    "name": member.name or (old.name if old else None),
                    "sector": member.sector if member.name or not old else old.sector,
                    "sub_industry": member.sub_industry or (old.sub_industry if old else None),
                    "is_active": True,
                    "in_sp500": flag == "in_sp500" or bool(old and old.in_sp500),
                    "in_scan_universe": flag == "in_scan_universe"
                    or bool(old and old.in_scan_universe),
                    "liquidity_rank": ranks[member.symbol],
                    "added_on": old.added_on if old and old.added_on else now.date(),
                    "updated_at": now,
                }
            )
        warehouse.upsert(conn, "tickers", rows)
        left = [s for s, row in existing.items() if getattr(row, flag) and s not in members]
        if left:
            conn.execute(
                sa.update(tables.tickers)
                .where(tables.tickers.c.symbol.in_(left))
                .values({flag: False, "updated_at": now})
            )
        if load.rejected:
            warehouse.upsert(
                conn,
                "row_rejections",
                [
                    {
                        "run_id": context.run.run_id,
                        "asset": context.asset_key.to_user_string(),
                        "partition": "-",
                        "symbol": "-",
                        "reason": reason,
                        "count": count,
                        "example": load.examples.get(reason, ""),
                        "recorded_at": now,
                    }
                    for reason, count in load.rejected.items()
                ],
            )
        return left

    left = warehouse.run_transaction(write)
    if load.rejected:
        context.log.warning("universe entries rejected: %s", dict(load.rejected))
    sectors: dict[str, int] = {}
    for member in load.members:
        sectors[member.sector] = sectors.get(member.sector, 0) + 1
    return dg.MaterializeResult(
        metadata={
            "symbols": dg.MetadataValue.int(len(load.members)),
            "removed": dg.MetadataValue.int(len(left)),
            "rejected": dg.MetadataValue.int(sum(load.rejected.values())),
            "rejections_by_reason": dg.MetadataValue.json(dict(load.rejected)),
            "sectors": dg.MetadataValue.json(dict(sorted(sectors.items()))),
            "source": dg.MetadataValue.text(source),
            "peak_rss_mb": dg.MetadataValue.float(peak_rss_mb()),
        }
    )


def _liquidity_ranks(symbols: list[str]) -> dict[str, int]:
    """Rank 1 = most liquid; the scan and the chain refresh visit liquid symbols first.

    The score is the simulated market's dollar volume: deterministic and available offline. With
    live providers it orders the work only, so an approximate score costs nothing in correctness.
    """
    market = SimulatedMarket()
    ordered = sorted(symbols, key=lambda s: -market.average_dollar_volume(s))
    return {symbol: rank for rank, symbol in enumerate(ordered, start=1)}


@dg.asset(
    group_name="universe",
    kinds={"python", "sql"},
    owners=OWNERS,
    description="S&P 500 constituents with name, GICS sector and sub-industry, plus the ETF "
    "list and VOLARIS_UNIVERSE_EXTRA (table `tickers`, flag `in_sp500`: the symbols every bar, "
    "chain and IV asset covers). Source: the pytickersymbols index list, or VOLARIS_UNIVERSE.",
    metadata=asset_metadata("tickers"),
)
def sp500_constituents(
    context: dg.AssetExecutionContext, config: UniverseConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        load = _load(config, (SP500,), core=True)
        return _write_universe(context, wh, load, "in_sp500", _source(config))


@dg.asset(
    group_name="universe",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    description="The option-scan universe: S&P 500 ∪ Nasdaq-100 ∪ S&P 600 ∪ the ETF list "
    "(~1,140 US optionable symbols; table `tickers`, flag `in_scan_universe`), or "
    "VOLARIS_UNIVERSE; plus VOLARIS_UNIVERSE_EXTRA except index symbols.",
    metadata=asset_metadata("tickers"),
)
def scan_universe(
    context: dg.AssetExecutionContext, config: UniverseConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        load = _load(config, SCAN_INDICES, core=False)
        return _write_universe(context, wh, load, "in_scan_universe", _source(config))
