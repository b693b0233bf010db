"""Infrastructure failures explained: each class from a real error where one can be had, what
failed, which database (never its password) and the fix; a refused row is not infrastructure.

Real errors come from the real drivers: a closed port, a host name under `.invalid`, a database
and a role the test server does not have, a read-only transaction, a backend the server
terminated, SQLite opened read-only through its URI (`mode=ro`: tests run as root, and root
writes through any chmod), a lock another connection holds, and full disks: a tiny tmpfs for
SQLite, and a tablespace on one for PostgreSQL. Mounting needs root: without it those tests skip,
and under CI they fail when root could not mount.
"""

from __future__ import annotations

import asyncio
import pwd
import sqlite3
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pandas as pd
import psycopg2
import pytest
import sqlalchemy as sa

from volaris_assets.ingest.fanout import RunIdentity, Written, fan_out
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse.errors import (
    WarehouseUnavailable,
    classify,
    explain,
    is_connection_lost,
)
from volaris_assets.warehouse.store import Warehouse, normalize_url
from volaris_assets.warehouse.tables import metadata
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.disks import tmpfs
from volaris_assets_tests.reliability.processes import free_port

PASSWORD = "Pa55-w0rd-secret"
NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)


def with_password(url: str, **parts: object) -> str:
    """`url` with the test password (trust authentication ignores it) and other parts."""
    parsed = sa.make_url(normalize_url(url)).set(password=PASSWORD, **parts)
    return parsed.render_as_string(hide_password=False)


def error_of(url: str, sql: str = "SELECT 1", **engine_args: object) -> Exception:
    """The error a fresh engine on `url` raises running `sql` in a transaction."""
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool, **engine_args)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    except Exception as error:  # noqa: BLE001 - the error is the result
        return error
    finally:
        engine.dispose()
    raise AssertionError(f"{sql!r} did not fail on {url}")


def assert_explained(error: BaseException, url: str, label: str, *fragments: str) -> str:
    """`explain` names the class and every fragment, in one line without the password."""
    text = explain(error, url)
    assert text.startswith(f"Warehouse unavailable ({label}): "), text
    for fragment in fragments:
        assert fragment in text, text
    assert PASSWORD not in text and "\n" not in text, text
    return text


@pytest.fixture
def server() -> str:
    return with_password(postgres_url())


def test_a_closed_port_is_refused_and_worth_reconnecting(server):
    port = free_port()
    url = with_password(server, port=port)
    error = error_of(url)
    assert_explained(
        error, url, "connection refused", f"127.0.0.1:{port}", "postgres:***@", "DATABASE_URL"
    )
    assert is_connection_lost(error)


def test_an_unknown_host_is_named_and_not_retried(server):
    url = with_password(server, host="volaris-no-such-host.invalid")
    error = error_of(url)
    assert_explained(error, url, "unknown host", "volaris-no-such-host.invalid", "DNS")
    assert not is_connection_lost(error)


def test_a_missing_database(server):
    name = f"volaris_missing_{uuid.uuid4().hex[:8]}"
    url = with_password(server, database=name)
    assert_explained(error_of(url), url, "database does not exist", f"/{name}", "createdb")


def test_an_unknown_role_is_an_authentication_failure(server):
    url = with_password(server, username="volaris_no_such_role")
    error = error_of(url)
    assert_explained(error, url, "authentication failed", "volaris_no_such_role", "password")
    assert not is_connection_lost(error)


def test_a_read_only_server(server):
    error = error_of(server, "SET TRANSACTION READ ONLY; CREATE TEMP TABLE t (a int)")
    assert_explained(error, server, "read-only", "replica", "primary")


def test_a_terminated_backend_is_a_lost_connection(server):
    engine = sa.create_engine(normalize_url(server), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as victim, engine.connect() as admin:
            pid = victim.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
            admin.exec_driver_sql(f"SELECT pg_terminate_backend({pid})")
            with pytest.raises(sa.exc.OperationalError) as caught:
                victim.exec_driver_sql("SELECT 1")
    finally:
        engine.dispose()
    assert_explained(caught.value, server, "connection lost", "restart")
    assert is_connection_lost(caught.value)


def test_a_full_disk_under_postgres(server):
    """A tablespace on a 512 KB tmpfs owned by the server's user fills up for real (mounted
    outside pytest's root-only temp directory, which the server could not traverse)."""
    engine = sa.create_engine(normalize_url(server), isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        data_directory = conn.exec_driver_sql("SHOW data_directory").scalar_one()
    if not Path(data_directory).is_dir():
        engine.dispose()
        pytest.skip("the test server runs on another machine: no tablespace on a local tmpfs")
    owner = pwd.getpwuid(Path(data_directory).stat().st_uid)
    name = f"volaris_full_{uuid.uuid4().hex[:8]}"
    ids = f"uid={owner.pw_uid},gid={owner.pw_gid},mode=700"
    mount_point = Path(tempfile.mkdtemp(prefix="volaris-pg-full-"))
    mount_point.chmod(0o755)
    try:
        with tmpfs(mount_point, "512k", ids) as disk, engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE TABLESPACE {name} LOCATION '{disk}'")
            try:
                conn.exec_driver_sql(f"CREATE TABLE {name} (a text) TABLESPACE {name}")
                with pytest.raises(sa.exc.OperationalError) as caught:
                    conn.exec_driver_sql(
                        f"INSERT INTO {name} SELECT repeat('x', 1000) FROM generate_series(1, 5000)"
                    )
            finally:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
                conn.exec_driver_sql(f"DROP TABLESPACE IF EXISTS {name}")
    finally:
        engine.dispose()
        mount_point.rmdir()
    assert_explained(caught.value, server, "disk full", "data directory", "free space")


@dataclass
class Got:
    frame: pd.DataFrame
    provider: str = "simulated"
    attempts: int = 1


async def fetch(symbol: str) -> Got:
    return Got(pd.DataFrame({"x": [1]}))


def sink(conn, symbol, fetched) -> Written:
    return Written(rows=len(fetched.frame))


def test_a_read_only_sqlite_file_stops_the_fan_out_with_the_fix(tmp_path):
    """The tables exist, so opening reads only; the writes then fail, and after three in a row
    the run stops saying which file is read-only."""
    path = tmp_path / "w.db"
    Warehouse(f"sqlite:///{path}").create_tables()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    identity = RunIdentity(run_id="run-1", asset="option_chains", partition="-")
    with WarehouseResource(database_url=url).open() as warehouse:
        with pytest.raises(WarehouseUnavailable) as caught:
            asyncio.run(fan_out(["AAPL", "MSFT", "KO", "XOM"], fetch, sink, warehouse, identity))
    message = str(caught.value)
    assert message.startswith("Warehouse unavailable (read-only): ")
    assert f"the SQLite file {path}" in message and "permissions" in message
    assert "file:" not in message and not (tmp_path / "file:").exists()


def test_a_full_disk_under_sqlite(tmp_path):
    with tmpfs(tmp_path / "disk", "320k") as disk:
        warehouse = Warehouse(f"sqlite:///{disk / 'w.db'}")
        warehouse.create_tables()
        rejection = {"asset": "a", "partition": "-", "symbol": "-", "reason": "r", "count": 1}
        with pytest.raises(sa.exc.OperationalError) as caught:
            for run in range(1000):
                row = {**rejection, "run_id": str(run), "example": "x" * 4000, "recorded_at": NOW}
                warehouse.run_transaction(
                    lambda conn, r=row: warehouse.upsert(conn, "row_rejections", [r])
                )
        warehouse.dispose()
    assert_explained(caught.value, warehouse.url, "disk full", str(disk / "w.db"), "Free space")


def test_a_locked_sqlite_file_is_not_a_lost_connection(tmp_path):
    path = tmp_path / "w.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (a)")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        url = f"sqlite:///{path}"
        error = error_of(url, "INSERT INTO t VALUES (1)", connect_args={"timeout": 0.1})
    finally:
        holder.close()
    assert_explained(error, url, "locked", str(path), "Another process")
    assert not is_connection_lost(error)


def test_an_unopenable_sqlite_path_fails_the_step_clearly(tmp_path):
    directory_url = f"sqlite:///{tmp_path}"
    assert_explained(error_of(directory_url), directory_url, "cannot open", str(tmp_path))
    (tmp_path / "plain-file").write_text("not a directory")
    under_a_file = f"sqlite:///{tmp_path / 'plain-file' / 'w.db'}"
    with pytest.raises(dg.Failure, match=r"^Warehouse unavailable \(cannot open\)"):
        with WarehouseResource(database_url=under_a_file).open():
            pass


def test_a_file_that_is_not_a_database_fails_the_step_clearly(tmp_path):
    garbage = tmp_path / "w.db"
    garbage.write_bytes(bytes(range(256)) * 20)
    url = f"sqlite:///{garbage}"
    error = error_of(url, "SELECT count(*) FROM sqlite_master")
    assert_explained(error, url, "not a database", str(garbage), "integrity_check")
    with pytest.raises(dg.Failure, match=r"^Warehouse unavailable \(not a database\)"):
        with WarehouseResource(database_url=url).open():
            pass


def test_open_gives_up_after_the_reconnect_window_on_a_refused_port(server):
    url = with_password(server, port=free_port())
    started = time.monotonic()
    with pytest.raises(dg.Failure) as caught:
        with WarehouseResource(database_url=url, reconnect_window_s=0.5).open():
            pass
    assert 0.5 <= time.monotonic() - started < 5
    message = str(caught.value)
    assert message.startswith("Warehouse unavailable (connection refused): ")
    assert message.endswith("Still failing after 0.5 s of reconnecting.")
    assert PASSWORD not in message and caught.value.__cause__ is None


def test_open_fails_at_once_when_reconnecting_cannot_help(server):
    url = with_password(server, database=f"volaris_missing_{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    with pytest.raises(dg.Failure, match=r"\(database does not exist\)"):
        with WarehouseResource(database_url=url).open():  # the default 30 s window
            pass
    assert time.monotonic() - started < 5


# Messages the drivers send that the test server cannot be made to produce.
PG, LITE = psycopg2.OperationalError, sqlite3.OperationalError
UNREPRODUCED = [
    (PG('FATAL:  password authentication failed for user "u"'), "authentication failed", False),
    (PG("FATAL:  the database system is starting up"), "not accepting connections", True),
    (PG("FATAL:  the database system is shutting down"), "not accepting connections", True),
    (PG("FATAL:  sorry, too many clients already"), "not accepting connections", True),
    (PG("FATAL:  terminating connection due to administrator command"), "connection lost", True),
    (psycopg2.InterfaceError("connection already closed"), "connection lost", True),
    (PG("timeout expired"), "unreachable", True),
    (LITE("disk I/O error"), "disk I/O error", False),
    (PermissionError(13, "Permission denied", "/srv/data"), "read-only", False),
    (sa.exc.OperationalError("INSERT", {}, Exception("gone")), "database error", False),
]


@pytest.mark.parametrize(("error", "label", "transient"), UNREPRODUCED)
def test_driver_messages_without_a_real_reproduction(error, label, transient):
    assert classify(error).label == label
    assert is_connection_lost(error) is transient
    assert_explained(error, f"postgresql://u:{PASSWORD}@db.example.com:5432/volaris", label)


def test_the_unclassified_keep_the_drivers_first_line():
    error = sa.exc.OperationalError("INSERT", {}, Exception("database is gone\nmore detail"))
    text = assert_explained(error, "sqlite:///w.db", "database error", "failed: database is gone.")
    assert "more detail" not in text


def test_a_refused_row_is_not_infrastructure(warehouse_url):
    """A duplicate key, or (PostgreSQL) a value too long for its column, is the row's fault:
    not retried, and recorded as bad data rather than stopping the run."""
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    tickers = metadata.tables["tickers"]
    row = {"symbol": "AAPL", "is_active": True, "in_sp500": True, "in_scan_universe": True}
    row["updated_at"] = warehouse.instant(NOW)
    warehouse.run_transaction(lambda conn: conn.execute(sa.insert(tickers), [row]))
    refused = [row, {**row, "symbol": "X" * 13}] if warehouse.dialect == "postgresql" else [row]
    for bad in refused:
        with pytest.raises((sa.exc.IntegrityError, sa.exc.DataError)) as caught:
            warehouse.run_transaction(lambda conn, b=bad: conn.execute(sa.insert(tickers), [b]))
        assert classify(caught.value) is None and not is_connection_lost(caught.value)
    warehouse.dispose()
