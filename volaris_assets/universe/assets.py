"""The symbol universes: S&P 500 constituents and the wider option-scan universe."""

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
    index_members,
    parse_override,
)
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now


class UniverseConfig(dg.Config):
    override: str | None = Field(
        default=None,
        description="A CSV path or comma-separated symbols replacing the shipped index list "
        "(defaults to the VOLARIS_UNIVERSE environment variable).",
    )


def _load(config: UniverseConfig, indices: tuple[str, ...]) -> UniverseLoad:
    override = config.override or os.environ.get("VOLARIS_UNIVERSE")
    return parse_override(override) if override else index_members(indices)


def _write_universe(
    context: dg.AssetExecutionContext, warehouse: Warehouse, load: UniverseLoad, flag: str
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
            "source": dg.MetadataValue.text(
                "VOLARIS_UNIVERSE override"
                if os.environ.get("VOLARIS_UNIVERSE")
                else "pytickersymbols"
            ),
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
    description="S&P 500 constituents with name, GICS sector and sub-industry (table `tickers`, "
    "flag `in_sp500`). Source: the pytickersymbols index list, or VOLARIS_UNIVERSE.",
    metadata=asset_metadata("tickers"),
)
def sp500_constituents(
    context: dg.AssetExecutionContext, config: UniverseConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        return _write_universe(context, wh, _load(config, (SP500,)), "in_sp500")


@dg.asset(
    group_name="universe",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    description="The option-scan universe: S&P 500 ∪ Nasdaq-100 ∪ S&P 600 (~1,100 US optionable "
    "symbols; table `tickers`, flag `in_scan_universe`), or VOLARIS_UNIVERSE.",
    metadata=asset_metadata("tickers"),
)
def scan_universe(
    context: dg.AssetExecutionContext, config: UniverseConfig, warehouse: WarehouseResource
) -> dg.MaterializeResult:
    with warehouse.open() as wh:
        return _write_universe(context, wh, _load(config, SCAN_INDICES), "in_scan_universe")
