from dataclasses import asdict

import dagster as dg
import pandas as pd
import pytest

from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.symbols import InvalidSymbol, normalize_symbol, occ_symbol, to_provider
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.universe.constituents import (
    MAX_UNIVERSE,
    SCAN_INDICES,
    SP500,
    etf_members,
    gics_sector,
    index_members,
    parse_override,
)
from volaris_assets.warehouse.store import Warehouse


@pytest.mark.parametrize("raw", ["BRK.B", "brk-b", "BRK/B", " brk.b "])
def test_class_share_spellings_normalise(raw):
    assert normalize_symbol(raw) == "BRK.B"


@pytest.mark.parametrize(
    "raw", ["", "'; DROP TABLE tickers;--", "AAPL🚀", "TOOLONGSYMBOL", "A.B.C"]
)
def test_hostile_symbols_are_refused(raw):
    with pytest.raises(InvalidSymbol):
        normalize_symbol(raw)


def test_provider_spellings_and_occ():
    assert to_provider("BRK.B", "yahoo") == "BRK-B"
    assert to_provider("BRK.B", "schwab") == "BRK/B"
    assert to_provider("BRK.B", "polygon") == "BRK.B"
    from datetime import date

    assert occ_symbol("AAPL", date(2026, 12, 18), "P", 190) == "AAPL  261218P00190000"


def test_shipped_universes():
    sp500 = index_members((SP500,))
    assert 495 <= len(sp500.members) <= 510
    symbols = {m.symbol for m in sp500.members}
    assert {"AAPL", "MSFT", "BRK.B"} <= symbols
    scan = index_members(SCAN_INDICES)
    assert 1100 <= len(scan.members) <= 1300
    sectors = {m.sector for m in sp500.members}
    assert {"Information Technology", "Financials", "Health Care", "Energy"} <= sectors
    unclassified = sum(m.sector == "Unclassified" for m in sp500.members)
    assert unclassified < 0.1 * len(sp500.members)


def test_sector_mapping():
    assert gics_sector(["Semiconductors", "Information Technology"]) == "Information Technology"
    assert gics_sector(["Conglomerate", "Industrial Conglomerates", "Industrials"]) == "Industrials"
    assert gics_sector(["Something odd"]) == "Unclassified"


def test_hostile_override_file(tmp_path):
    lines = ["symbol", "aapl", "AAPL", "", "'; DROP TABLE tickers;--", "BRK/B", "ÄPFEL"]
    lines += [
        f"Z{chr(65 + i // 676)}{chr(65 + i // 26 % 26)}{chr(65 + i % 26)}" for i in range(10_000)
    ]
    path = tmp_path / "universe.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    load = parse_override(str(path))
    assert [m.symbol for m in load.members[:2]] == ["AAPL", "BRK.B"]
    assert len(load.members) == MAX_UNIVERSE
    assert load.rejected["duplicate"] == 1
    assert load.rejected["empty"] == 1
    assert load.rejected["invalid_symbol"] == 2
    assert load.rejected["over_limit"] == 10_000 + 2 - MAX_UNIVERSE
    assert sum(load.rejected.values()) + len(load.members) == len(lines) - 1  # nothing lost


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("ticker\nAAPL\nMSFT\n", ["AAPL", "MSFT"]),  # a header it did not know became TICKER
        ("Name,Tickers\nApple,AAPL\nMicrosoft,MSFT\n", ["AAPL", "MSFT"]),
        ("AAPL\nMSFT\n", ["AAPL", "MSFT"]),  # no header at all: a list of tickers
    ],
)
def test_the_ticker_column_is_found_by_its_usual_names(tmp_path, text, expected):
    path = tmp_path / "universe.csv"
    path.write_text(text, encoding="utf-8")
    load = parse_override(str(path))
    assert [m.symbol for m in load.members] == expected
    assert not load.rejected


def test_a_shipped_etf_in_a_user_list_is_an_etf():
    """SPY listed in VOLARIS_UNIVERSE was stored as "Unclassified" with no name."""
    from volaris_assets.universe.constituents import ETF_SECTOR, UniverseLoad, with_extra

    load = with_extra(UniverseLoad(), parse_override("spy,AAPL"), indices=True)
    spy, aapl = load.members
    assert (spy.symbol, spy.name, spy.sector) == ("SPY", "SPDR S&P 500 ETF Trust", ETF_SECTOR)
    assert (aapl.symbol, aapl.name) == ("AAPL", None)


def test_override_list_and_missing_file():
    assert [m.symbol for m in parse_override("msft, nvda;KO").members] == ["MSFT", "NVDA", "KO"]
    with pytest.raises(FileNotFoundError):
        parse_override("/nonexistent/universe.csv")


def test_the_default_universe_round_trips_unchanged(warehouse_url, instance, monkeypatch):
    """Every shipped name, sector and sub-industry (the ETF list's too) comes back as loaded, on
    PostgreSQL too (KEYS' 221-character sub-industry once failed the whole asset there)."""
    monkeypatch.delenv("VOLARIS_UNIVERSE", raising=False)
    monkeypatch.delenv("VOLARIS_UNIVERSE_EXTRA", raising=False)
    result = dg.materialize(
        [sp500_constituents],
        resources={"warehouse": WarehouseResource(database_url=warehouse_url)},
        instance=instance,
    )
    assert result.success
    members = index_members((SP500,)).members + etf_members()
    expected = pd.DataFrame([asdict(m) for m in members])
    warehouse = Warehouse(warehouse_url)
    stored = warehouse.read_frame(
        "SELECT symbol, name, sector, sub_industry FROM tickers ORDER BY symbol"
    )
    warehouse.dispose()
    assert expected["sub_industry"].str.len().max() > 200
    pd.testing.assert_frame_equal(
        stored, expected.sort_values("symbol").reset_index(drop=True), check_dtype=False
    )
