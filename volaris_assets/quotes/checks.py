"""The quote check: every symbol the bot may be asked about has a quote as fresh as the rest.

Staleness is measured against the newest quote in the table, not the wall clock: after the
close every quote is hours old and nothing is wrong, while one symbol left 15 minutes behind the
others mid-session is one the bot's `/price` answers wrongly.
"""

from datetime import timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from volaris_assets.quotes.assets import quote_symbols, quotes
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse import tables

STALE_AFTER = timedelta(minutes=15)
MAX_UNQUOTED_FRACTION = 0.02


@dg.asset_check(
    asset=quotes,
    name="quotes_cover_universe",
    description="At most 2% of the symbols quoted (S&P 500, ETFs, alert symbols) lack a quote "
    f"or have one more than {STALE_AFTER.seconds // 60} minutes older than the newest quote.",
)
def quotes_cover_universe(warehouse: WarehouseResource) -> dg.AssetCheckResult:
    with warehouse.open() as wh:
        wanted = quote_symbols(wh)
        stored = wh.read_frame(sa.select(tables.quotes.c.symbol, tables.quotes.c.quote_ts))
    stamps = pd.to_datetime(stored["quote_ts"], utc=True).set_axis(stored["symbol"])
    newest = stamps.max() if len(stamps) else None
    missing = sorted(set(wanted) - set(stamps.index))
    stale = sorted(s for s in set(wanted) & set(stamps.index) if newest - stamps[s] > STALE_AFTER)
    allowed = int(len(wanted) * MAX_UNQUOTED_FRACTION)
    return dg.AssetCheckResult(
        passed=len(missing) + len(stale) <= allowed,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(wanted)} symbols: {len(missing)} without a quote, {len(stale)} stale",
        metadata={
            "symbols": len(wanted),
            "missing": len(missing),
            "stale": len(stale),
            "newest_quote_ts": newest.isoformat() if newest is not None else "none",
            "missing_symbols": dg.MetadataValue.json(missing[:50]),
            "stale_symbols": dg.MetadataValue.json(stale[:50]),
        },
    )


quote_checks = [quotes_cover_universe]
