"""Sector and industry of each stock from a live company-profile provider.

The shipped index lists give sectors by matching their industry words to the eleven GICS
sectors; a live profile (Finnhub's `finnhubIndustry`) is the provider's own classification,
kept up to date by it. `company_profiles` runs after the universe (the same weekly job) and,
when VOLARIS_PROFILE_PROVIDERS names a provider, asks it for every stock of the S&P 500
universe through the ordinary fan-out: the shared budget (Finnhub's free tier is 60 requests a
minute: ~9 minutes for the universe), retries, one outcome row per symbol. The provider's label
becomes `sub_industry` and its GICS sector (the same keyword rules as the shipped lists)
`sector`; a label no rule recognises leaves the sector as it was. ETFs and indices are not
companies and are not asked. Without a provider the asset writes nothing and says so.
"""

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from volaris_assets.ingest.asset_support import (
    OWNERS,
    IngestConfig,
    asset_metadata,
    run_fan_out,
    universe_symbols,
)
from volaris_assets.ingest.fanout import Written
from volaris_assets.providers.profiles import ProfileChain
from volaris_assets.providers.resilience import FallbackChain, Fetched
from volaris_assets.resources.market_data import ProfileDataResource
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.universe.constituents import (
    ETF_SECTOR,
    INDEX_SECTOR,
    UNCLASSIFIED,
    gics_sector,
)
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse, utc_now


def _companies(warehouse: Warehouse, symbols: list[str]) -> list[str]:
    """`symbols` less the ETFs and indices: they have no company profile to ask for."""
    tickers = tables.tickers
    query = sa.select(tickers.c.symbol).where(
        tickers.c.symbol.in_(symbols), tickers.c.sector.not_in([ETF_SECTOR, INDEX_SECTOR])
    )
    with warehouse.engine.connect() as conn:
        return sorted(conn.execute(query).scalars())


def _classified(conn: Connection, symbol: str, fetched: Fetched) -> Written:
    """Write one profile: the provider's label as sub-industry, its GICS sector when a rule
    knows it, the company's name when the profile has one."""
    profile = fetched.frame.iloc[0]
    label = profile["sector"] if isinstance(profile["sector"], str) else None
    values: dict[str, object] = {"updated_at": utc_now()}
    if label:
        values["sub_industry"] = label
        if (sector := gics_sector([label])) != UNCLASSIFIED:
            values["sector"] = sector
    if isinstance(profile["name"], str) and profile["name"]:
        values["name"] = profile["name"]
    done = conn.execute(
        sa.update(tables.tickers).where(tables.tickers.c.symbol == symbol).values(values)
    )
    return Written(rows=done.rowcount)


@dg.asset(
    group_name="universe",
    kinds={"python", "sql"},
    owners=OWNERS,
    deps=[sp500_constituents],
    description="Sector and industry of every S&P 500 stock from VOLARIS_PROFILE_PROVIDERS "
    "(Finnhub's company profile): the provider's industry as `tickers.sub_industry`, its GICS "
    "sector as `tickers.sector`. Writes nothing when no profile provider is configured.",
    metadata=asset_metadata("tickers"),
)
def company_profiles(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    profile_data: ProfileDataResource,
    warehouse: WarehouseResource,
) -> dg.MaterializeResult:
    if not profile_data.providers.strip():
        return dg.MaterializeResult(
            metadata={
                "provider": dg.MetadataValue.text("none"),
                "note": dg.MetadataValue.text(
                    "VOLARIS_PROFILE_PROVIDERS is unset: sectors stay those of the shipped "
                    "index lists"
                ),
            }
        )
    with warehouse.open() as wh:
        symbols = _companies(wh, universe_symbols(wh, "in_sp500", config.symbols))

        async def fetch(chain: FallbackChain, symbol: str) -> Fetched:
            return await ProfileChain.of(chain).profile(symbol)

        summary = run_fan_out(
            context,
            profile_data,
            wh,
            symbols,
            fetch,
            _classified,
            start_with=config.start_with_provider,
            priority="bulk",
        )
    return dg.MaterializeResult(metadata=summary.metadata())
