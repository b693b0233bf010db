"""A warehouse restart mid-run loses nothing and fails nothing; one that outlasts the reconnect
window fails the run after about that window, saying so.

The shared test server is never restarted: the runs reach it through a loopback proxy that the
test cuts the way a restart does (every open connection closed at once, new ones refused for a
while, then accepted again). The cut lands inside one symbol's transaction, after its contracts
are written and before its outcome row is, so a retry that kept half a transaction would show.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import dagster as dg
import pytest
import sqlalchemy as sa

from volaris_assets.options import assets as option_assets
from volaris_assets.options.assets import option_chains
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse.store import Warehouse, normalize_url
from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.pipeline_support import SNAPSHOT, resources
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import materialize_universe
from volaris_assets_tests.reliability.warehouse_state import (
    assert_same_state,
    partial_symbols,
    warehouse_state,
)

SYMBOLS = ["AAPL", "MSFT", "NVDA", "BRK.B", "KO", "XOM"]
VICTIM = "KO"
PASSWORD = "Pa55-w0rd-secret"  # trust authentication ignores it; messages must not show it
COMPARED = ("tickers", "option_contracts", "option_snapshots", "sync_stock_results")


class SeverableProxy:
    """A loopback TCP forwarder to the PostgreSQL server that a test can cut like a restart."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._serve(self._listener)

    def sever(self, down_s: float | None) -> None:
        """Close every connection and refuse new ones, for `down_s` (None: for good)."""
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._open = self._open, set()
        for sock in (listener, *sockets):
            _close(sock)
        if down_s is not None:
            threading.Timer(down_s, self._reopen).start()

    def close(self) -> None:
        self.sever(None)

    def _reopen(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port))  # SO_REUSEADDR: same port
        with self._lock:
            self._listener = listener
        self._serve(listener)

    def _serve(self, listener: socket.socket) -> None:
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                return  # the listener was closed: severed
            with self._lock:
                if self._listener is not listener:  # severed meanwhile
                    _close(client)
                    _close(upstream)
                    return
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    _close(source)
    _close(sink)


def _close(sock: socket.socket | None) -> None:
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


@pytest.fixture
def proxy() -> Iterator[SeverableProxy]:
    parsed = sa.make_url(normalize_url(postgres_url()))
    running = SeverableProxy((parsed.host or "127.0.0.1", parsed.port or 5432))
    yield running
    running.close()


@pytest.fixture
def databases(instance) -> Iterator[tuple[str, str]]:
    """Two scratch warehouses with the same universe: one to cut, one for the clean run."""
    server = postgres_url()
    with scratch_database(server, "cut") as cut, scratch_database(server, "clean") as clean:
        for url in (cut, clean):
            assert materialize_universe(url, SYMBOLS, instance).success
        yield cut, clean


def through(proxy: SeverableProxy, url: str) -> str:
    """`url` reaching its server through `proxy`, with a password to keep out of messages."""
    parsed = sa.make_url(normalize_url(url)).set(port=proxy.port, password=PASSWORD)
    return parsed.render_as_string(hide_password=False)


def sever_inside(victim: str, proxy: SeverableProxy, down_s: float | None, monkeypatch):
    """Make `write_chain` cut the proxy once, in `victim`'s transaction after its contracts
    are written; returns the symbols it was called for, in order, and the moment of the cut."""
    calls: list[str] = []
    cut: list[float] = []
    original = option_assets.write_chain

    def write_chain(conn, warehouse, symbol, fetched, snapshot):
        calls.append(symbol)
        written = original(conn, warehouse, symbol, fetched, snapshot)
        if symbol == victim and not cut:
            cut.append(time.monotonic())
            proxy.sever(down_s)
        return written

    monkeypatch.setattr(option_assets, "write_chain", write_chain)
    return calls, cut


def materialize_chains(url: str, instance, window_s: float = 30.0) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [option_chains],
        partition_key=SNAPSHOT,
        resources={
            **resources(url),
            "warehouse": WarehouseResource(database_url=url, reconnect_window_s=window_s),
        },
        instance=instance,
        raise_on_error=False,
    )


def test_a_restart_mid_run_loses_nothing(proxy, databases, instance, monkeypatch):
    cut_url, clean_url = databases
    calls, cut = sever_inside(VICTIM, proxy, 0.5, monkeypatch)
    result = materialize_chains(through(proxy, cut_url), instance)
    monkeypatch.undo()
    assert result.success
    # The cut symbol's whole transaction again, on a new connection; every other symbol once.
    assert cut and Counter(calls) == {symbol: 1 + (symbol == VICTIM) for symbol in SYMBOLS}

    assert materialize_chains(clean_url, instance).success
    assert_same_state(warehouse_state(cut_url, COMPARED), warehouse_state(clean_url, COMPARED))
    assert partial_symbols(cut_url) == {}
    outcomes = warehouse_state(cut_url, ("sync_stock_results",))["sync_stock_results"]
    assert sorted(outcomes["symbol"]) == sorted(SYMBOLS) and (outcomes["status"] == "ok").all()


def test_a_warehouse_down_past_the_window_fails_the_run_after_about_the_window(
    proxy, databases, instance, monkeypatch
):
    window_s = 1.0
    cut_url, _ = databases
    calls, cut = sever_inside(VICTIM, proxy, None, monkeypatch)
    result = materialize_chains(through(proxy, cut_url), instance, window_s)
    ended = time.monotonic()
    assert not result.success
    assert window_s <= ended - cut[0] < window_s + 5  # once, not once per symbol left
    assert calls[-1] == VICTIM and calls.count(VICTIM) == 1  # no symbol written after it

    failure = next(e for e in result.all_events if e.is_step_failure)
    # The resource turns WarehouseUnavailable into the step's dg.Failure: its description is
    # the run's failure message, with no driver traceback behind it.
    message = failure.step_failure_data.user_failure_data.description
    assert failure.step_failure_data.error.cause is None
    assert "Warehouse unavailable (connection refused): the PostgreSQL database " in message
    assert f"postgres:***@127.0.0.1:{proxy.port}/" in message and "Check DATABASE_URL" in message
    assert f"Still failing after {window_s:g} s of reconnecting." in message
    assert PASSWORD not in message
    assert PASSWORD not in failure.step_failure_data.error.to_string()
    assert partial_symbols(cut_url) == {}  # the cut symbol's contracts were rolled back


def test_a_refused_row_is_not_retried():
    """Only a lost connection is worth another attempt; the database's refusal is final."""
    warehouse = Warehouse(postgres_url())
    attempts: list[int] = []

    def refused(conn: sa.Connection) -> None:
        attempts.append(1)
        conn.exec_driver_sql("SELECT 1/0")

    with pytest.raises(sa.exc.DataError):
        warehouse.run_transaction(refused)
    assert attempts == [1]
    warehouse.dispose()
