import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from volaris_assets.warehouse.store import Warehouse, normalize_url, redact_url
from volaris_assets.warehouse.tables import KEYS, metadata, text_limits

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


def test_a_few_rows_store_what_copy_stores(pg_warehouse_url):
    """PostgreSQL: up to SMALL_BATCH_ROWS rows go in as one INSERT, more through COPY; both
    read cells the same way (a naive timestamp is UTC, a date from text or a datetime, a whole
    float in an integer column, NaN and NaT as NULL, the last row of a key wins)."""
    from volaris_assets.warehouse import upsert

    warehouse = Warehouse(pg_warehouse_url)
    warehouse.create_tables()
    odd = [
        contract(
            occ_symbol="AAPL  261218P00190000",
            last_updated=datetime(2026, 11, 24, 15, 0),  # naive: UTC
            expiration="2026-12-18",
            volume=12.0,
            open_interest=float("nan"),
            last=pd.NaT,
        ),
        contract(occ_symbol="AAPL  261218P00195000", expiration=datetime(2026, 12, 18, 0, 0)),
        contract(occ_symbol="AAPL  261218P00195000", bid=2.5),  # the same key: this one wins
    ]
    columns = "occ_symbol, expiration, volume, open_interest, last, bid, last_updated"
    query = f"SELECT {columns} FROM option_contracts ORDER BY occ_symbol"
    try:
        with warehouse.transaction() as conn:
            assert warehouse.upsert(conn, "option_contracts", odd) == 2
        small = warehouse.read_frame(query)
        with warehouse.transaction() as conn:
            conn.exec_driver_sql("DELETE FROM option_contracts")
            frame = pd.DataFrame(odd)
            upsert.postgres_upsert(
                conn, metadata.tables["option_contracts"], KEYS["option_contracts"], frame, None
            )
        pd.testing.assert_frame_equal(small, warehouse.read_frame(query))
        assert small["bid"].tolist() == [2.1, 2.5] and small["volume"].tolist() == [12, 10]
        assert small["last_updated"].iloc[0] == pd.Timestamp(T0)
    finally:
        warehouse.dispose()


def test_free_text_columns_are_unbounded():
    """Descriptions come from data sources that promise no length (a 221-character
    sub-industry failed the universe on PostgreSQL)."""
    for table, column in [
        ("tickers", "name"),
        ("tickers", "sector"),
        ("tickers", "sub_industry"),
        ("sync_stock_results", "error_message"),
        ("row_rejections", "example"),
    ]:
        assert isinstance(metadata.tables[table].c[column].type, sa.Text), (table, column)


def test_every_identifier_fits_its_column():
    """The bounds that remain are invariants of the platform; each is checked at its source."""
    from volaris_assets.definitions import defs
    from volaris_assets.ingest.fanout import RETRYABLE_OUTCOMES
    from volaris_assets.providers.base import ErrorCategory
    from volaris_assets.providers.registry import PROVIDER_MODULES, SIMULATED
    from volaris_assets.symbols import normalize_symbol, occ_symbol

    def limit(table: str, column: str) -> int:
        return text_limits(metadata.tables[table])[column]

    longest_symbol = normalize_symbol("abcdef/gh")
    assert len(longest_symbol) == 9 <= limit("tickers", "symbol")
    with pytest.raises(ValueError):
        normalize_symbol("ABCDEFG")
    assert len(occ_symbol(longest_symbol, T0.date(), "P", 999_999.999)) == 24
    assert limit("option_snapshots", "occ_symbol") == 24  # larger strikes: `too_long` rows

    providers = [*PROVIDER_MODULES, SIMULATED]
    assert max(map(len, providers)) <= limit("option_contracts", "provider")
    every_provider = ",".join(sorted(providers))  # what a multi-session iv_metrics row records
    assert len(every_provider) <= limit("iv_metrics", "provider")
    assert len(every_provider) <= limit("sync_stock_results", "provider")

    categories = [c.value for c in ErrorCategory] + sorted(RETRYABLE_OUTCOMES)
    assert max(map(len, categories)) <= limit("sync_stock_results", "error_type")
    assert max(map(len, ("ok", "failed"))) <= limit("sync_stock_results", "status")

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        assert len(key.to_user_string()) <= limit("sync_stock_results", "asset"), key
        partitions = graph.get(key).partitions_def
        if partitions is not None:
            first = partitions.get_first_partition_key()
            label = f"{first}..{partitions.get_last_partition_key() or first}"  # a range run
            assert len(label) <= limit("sync_stock_results", "partition"), label
    assert len(str(uuid.uuid4())) <= limit("sync_stock_results", "run_id")


def narrow_schema() -> sa.MetaData:
    """The contract as an older release created it: free text in bounded VARCHARs."""
    old = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(old)
    for table, column, length in [
        ("tickers", "name", 200),
        ("tickers", "sector", 80),
        ("tickers", "sub_industry", 120),
        ("sync_stock_results", "error_message", 500),
        ("sync_stock_results", "provider", 16),
        ("iv_metrics", "provider", 16),
        ("row_rejections", "example", 200),
    ]:
        old.tables[table].c[column].type = sa.String(length)
    return old


def live_text_types(warehouse: Warehouse) -> dict[tuple[str, str], str]:
    """Every live text column's type: "text", or "varchar(n)"."""
    frame = warehouse.read_frame(
        "SELECT table_name, column_name, "
        "coalesce('varchar(' || character_maximum_length || ')', data_type) AS type "
        "FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND data_type IN ('text', 'character varying')"
    )
    return {(r.table_name, r.column_name): r.type for r in frame.itertuples()}


def test_create_tables_widens_what_an_older_release_created_narrow():
    """A warehouse created with the old VARCHAR lengths keeps its rows and then takes a value
    the old column refused; a second call finds nothing to change and alters nothing."""
    from volaris_assets_tests.conftest import postgres_url
    from volaris_assets_tests.reliability.databases import scratch_database

    with scratch_database(postgres_url(), "widen") as url:
        warehouse = Warehouse(url)
        narrow_schema().create_all(warehouse.engine)
        ticker = {"symbol": "KEYS", "is_active": True, "in_sp500": True, "in_scan_universe": True}
        with warehouse.transaction() as conn:
            warehouse.upsert(conn, "tickers", [{**ticker, "name": "Old", "updated_at": T0}])
            with pytest.raises(psycopg2.errors.StringDataRightTruncation):  # the driver's own
                with conn.begin_nested():
                    warehouse.upsert(conn, "tickers", [{**ticker, "sub_industry": "x" * 221}])
        warehouse.create_tables()
        types = live_text_types(warehouse)
        assert types[("tickers", "sub_industry")] == types[("row_rejections", "example")] == "text"
        assert types[("sync_stock_results", "provider")] == "varchar(80)"
        assert types[("tickers", "symbol")] == "varchar(12)"  # identifiers keep their bound
        row = {**ticker, "name": "Old", "sub_industry": "x" * 221, "updated_at": T0}
        with warehouse.transaction() as conn:
            warehouse.upsert(conn, "tickers", [row])
        stored = warehouse.read_frame("SELECT name, sub_industry FROM tickers")
        assert stored.to_dict("records") == [{"name": "Old", "sub_industry": "x" * 221}]

        statements: list[str] = []
        sa.event.listen(
            warehouse.engine, "before_cursor_execute", lambda *a: statements.append(a[2])
        )
        warehouse.create_tables()
        assert not [s for s in statements if s.lstrip().upper().startswith("ALTER")]
        warehouse.dispose()
