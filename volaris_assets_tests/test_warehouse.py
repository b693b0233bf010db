from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from volaris_assets.warehouse.store import Warehouse, normalize_url, redact_url
from volaris_assets.warehouse.tables import KEYS

T0 = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def contract(**overrides):
    row = {
        "occ_symbol": "AAPL  261218P00190000",
        "symbol": "AAPL",
        "expiration": T0.date(),
        "strike": 190.0,
        "right": "P",
        "bid": 2.1,
        "ask": 2.2,
        "mark_price": 2.15,
        "last": None,
        "volume": 10,
        "open_interest": 100,
        "implied_volatility": float("nan"),
        "delta": -0.2,
        "gamma": 0.01,
        "theta": -0.05,
        "vega": 0.1,
        "underlying_price": 200.0,
        "dte": 24,
        "provider": "simulated",
        "last_updated": T0,
    }
    return {**row, **overrides}


def test_url_normalisation_pins_psycopg2():
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg2://u:p@h/db"
    assert normalize_url("postgres://u@h/db") == "postgresql+psycopg2://u@h/db"
    assert normalize_url(None).startswith("sqlite:///")
    assert "secret" not in redact_url("postgresql://u:secret@h/db")


def test_keys_are_the_contract():
    assert KEYS["price_bars"] == ("symbol", "timeframe", "ts")
    assert KEYS["option_contracts"] == ("occ_symbol",)
    assert KEYS["option_snapshots"] == ("occ_symbol", "snapshot_ts")
    assert KEYS["iv_metrics"] == ("symbol", "date")


def test_upsert_is_idempotent_and_keeps_nulls(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    warehouse.create_tables()  # safe twice
    for _ in range(2):
        with warehouse.transaction() as conn:
            assert warehouse.upsert(conn, "option_contracts", [contract()]) == 1
    rows = warehouse.read_frame(
        'SELECT occ_symbol, "last", implied_volatility FROM option_contracts'
    )
    assert len(rows) == 1
    assert rows["last"].isna().all() and rows["implied_volatility"].isna().all()
    warehouse.dispose()


def test_update_where_newer_never_goes_back_in_time(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    newer = contract(bid=3.0, last_updated=T0 + timedelta(minutes=15))
    older = contract(bid=1.0, last_updated=T0)
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "option_contracts", [newer], update_where_newer="last_updated")
    with warehouse.transaction() as conn:
        warehouse.upsert(conn, "option_contracts", [older], update_where_newer="last_updated")
    assert warehouse.read_frame("SELECT bid FROM option_contracts")["bid"].tolist() == [3.0]
    warehouse.dispose()


def test_bulk_frame_upsert_and_failed_transaction_writes_nothing(warehouse_url):
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    frame = pd.DataFrame(
        [contract(occ_symbol=f"AAPL  261218P{i:08d}", strike=float(i)) for i in range(1, 2001)]
    )
    with warehouse.transaction() as conn:
        assert warehouse.upsert(conn, "option_contracts", frame) == 2000
    with pytest.raises(RuntimeError):
        with warehouse.transaction() as conn:
            warehouse.upsert(conn, "option_contracts", frame.assign(bid=9.9))
            raise RuntimeError("killed mid-symbol")
    counts = warehouse.read_frame("SELECT count(*) AS n, max(bid) AS b FROM option_contracts")
    assert counts["n"][0] == 2000 and counts["b"][0] == 2.1
    warehouse.dispose()
