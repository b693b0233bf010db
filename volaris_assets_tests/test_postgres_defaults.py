"""PostgreSQL is a first-class target: every asset materializes there with the default universe
and default settings, as `make materialize` runs them for a user who sets only DATABASE_URL.
SQLite ignores VARCHAR lengths, so this is where a column too narrow for real data shows."""

from __future__ import annotations

from datetime import date

import pytest

from volaris_assets import calendar, materialize, settings
from volaris_assets.universe.constituents import ETFS, SCAN_INDICES, index_members
from volaris_assets.warehouse.store import Warehouse

SESSION = date(2026, 11, 24)


@pytest.fixture
def default_settings(monkeypatch, pg_warehouse_url) -> settings.Settings:
    for name in settings.fields():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", pg_warehouse_url)
    return settings.load()


def test_every_asset_on_postgresql_with_the_default_universe(
    default_settings, instance, pg_warehouse_url, capsys
):
    assert materialize.run(calendar.session(SESSION), instance, default_settings)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 8 and not any(line.startswith("FAILED") for line in lines)
    assert all("symbols_failed=0 " in line for line in lines if "symbols_ok" in line)

    members = {m.symbol: m for m in index_members(SCAN_INDICES).members}
    warehouse = Warehouse(pg_warehouse_url)
    stored = warehouse.read_frame("SELECT symbol, name, sub_industry FROM tickers")
    # What the bot's users ask about first: the ETFs have a quote, a chain and IV metrics.
    for table in ("quotes", "option_contracts", "iv_metrics"):
        found = warehouse.read_frame(
            f"SELECT DISTINCT symbol FROM {table} WHERE symbol IN ('SPY', 'QQQ')"
        )
        assert set(found["symbol"]) == {"SPY", "QQQ"}, table
    warehouse.dispose()
    assert len(stored) == len(members) + len(ETFS)
    longest = max(members.values(), key=lambda m: len(m.sub_industry or ""))
    assert len(longest.sub_industry) > 120  # the value that broke VARCHAR(120)
    row = stored.set_index("symbol").loc[longest.symbol]
    assert row.sub_industry == longest.sub_industry
