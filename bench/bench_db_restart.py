"""A real PostgreSQL restart in the middle of an `option_chains` run: does the run ride through
it, and is the warehouse then the same as a clean run's?

    python -m bench.bench_db_restart [--symbols 500] [--after 150] [--server URL]

Needs root and the local Debian cluster (`pg_ctlcluster`): it restarts the server every other
client of it shares, for about a second. Set-up: two fresh databases on the server
(`volaris_bench_restart` and `volaris_bench_restart_clean`, dropped at the end), the universe
(the first N symbols of the scan universe) materialized into both, simulated chains.

1. `dagster asset materialize --select option_chains --partition 2026-11-24-15:45` into the
   first database, as a user runs it; once `--after` symbols' outcome rows have committed, the
   server is restarted with `pg_ctlcluster --skip-systemctl-redirect <version> main restart -m
   fast` (a fast shutdown terminates every session, as a failover does), while a prober
   measures how long new connections were refused.
2. The same command into the clean database, no restart.
3. Compared: rows per table (option_contracts, option_snapshots, sync_stock_results), duplicate
   keys, symbols whose chain is partially written (data without its outcome row, or counts
   that disagree), and every row value for value (write-time columns aside).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from bench import common
from volaris_assets.warehouse.store import normalize_url
from volaris_assets.warehouse.tables import KEYS
from volaris_assets_tests.reliability.warehouse_state import (
    partial_symbols,
    state_differences,
    warehouse_state,
)

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
DATABASES = ("volaris_bench_restart", "volaris_bench_restart_clean")
SNAPSHOT = "2026-11-24-15:45"
COMPARED = ("option_contracts", "option_snapshots", "sync_stock_results")


@contextlib.contextmanager
def fresh_databases(server: str, names: tuple[str, ...]) -> Iterator[list[str]]:
    """Each database created empty (dropped first if a previous run left it), its URL
    yielded, and dropped at the end."""
    admin = sa.create_engine(
        normalize_url(server), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )

    def drop_all() -> None:
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    drop_all()
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = sa.make_url(normalize_url(server))
    try:
        yield [base.set(database=n).render_as_string(hide_password=False) for n in names]
    finally:
        drop_all()
        admin.dispose()


def scalar(url: str, query: str) -> int:
    engine = sa.create_engine(normalize_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql(query).scalar_one())
    finally:
        engine.dispose()


def outcomes_committed(url: str) -> int:
    """Outcome rows committed so far (0 before the table exists)."""
    try:
        return scalar(url, "SELECT count(*) FROM sync_stock_results")
    except sa.exc.ProgrammingError:
        return 0


def cluster_version() -> str:
    """The one PostgreSQL cluster version installed (Debian's /etc/postgresql/<version>)."""
    versions = sorted(p.name for p in Path("/etc/postgresql").iterdir() if p.is_dir())
    if len(versions) != 1:
        raise SystemExit(f"expected one cluster under /etc/postgresql, found {versions}")
    return versions[0]


class Prober:
    """Connects every 20 ms while running: how long the server refused new connections."""

    def __init__(self, url: str) -> None:
        self.url = normalize_url(url)
        self.first_refused: float | None = None
        self.last_refused: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        engine = sa.create_engine(
            self.url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 1}
        )
        while not self._stop.is_set():
            try:
                with engine.connect():
                    pass
            except sa.exc.OperationalError:
                now = time.monotonic()
                self.first_refused = self.first_refused or now
                self.last_refused = now
            self._stop.wait(0.02)
        engine.dispose()

    @property
    def refused_s(self) -> float:
        if self.first_refused is None or self.last_refused is None:
            return 0.0
        return self.last_refused - self.first_refused


def restart_server(version: str, server: str) -> tuple[float, float]:
    """Restart the cluster; (seconds the command took, seconds new connections failed)."""
    command = ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"]
    with Prober(server) as prober:
        started = time.monotonic()
        subprocess.run([*command, "-m", "fast"], check=True, capture_output=True)
        took = time.monotonic() - started
        deadline = time.monotonic() + 30
        while prober.last_refused is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the prober has not caught a refusal yet
        time.sleep(0.2)  # and a few accepted connections after it
    return took, prober.refused_s


def writes_resumed(url: str, process: subprocess.Popen) -> float:
    """When the run's next outcome row committed after the restart (or the run ended)."""
    seen = outcomes_committed(url)
    while outcomes_committed(url) <= seen and process.poll() is None:
        time.sleep(0.02)
    return time.monotonic()


def duplicate_keys(url: str, table: str) -> int:
    """Rows beyond one per natural key (the primary key makes this 0; counted, not assumed)."""
    keys = ", ".join(f'"{k}"' for k in KEYS[table])
    return scalar(url, f"SELECT count(*) - count(DISTINCT ({keys})) FROM {table}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--after", type=int, default=150, help="outcomes before the restart")
    parser.add_argument("--server", default=DEFAULT_SERVER, help="a URL of the local server")
    args = parser.parse_args()
    version = cluster_version()
    symbols = common.universe(args.symbols)
    command = common.dagster_materialize("option_chains", partition=SNAPSHOT)
    with (
        common.workdir("db-restart") as work,
        fresh_databases(args.server, DATABASES) as (restarted_url, clean_url),
    ):
        universe = str(common.write_universe(work / "universe.csv", symbols))
        envs = {
            url: common.run_env(work, DATABASE_URL=url, VOLARIS_UNIVERSE=universe)
            for url in (restarted_url, clean_url)
        }
        for env in envs.values():
            log = work / "universe.log"
            code, _, _ = common.run_sampled(
                common.dagster_materialize("sp500_constituents"), env, log
            )
            common.check(code, log, "universe")

        log = work / "restarted.log"
        started = time.monotonic()
        process = common.start_group(command, envs[restarted_url], log)
        while outcomes_committed(restarted_url) < args.after:
            if process.poll() is not None:
                raise SystemExit(f"the run ended before {args.after} outcomes: raise --symbols")
            time.sleep(0.05)
        before = outcomes_committed(restarted_url)
        restart_began = time.monotonic()
        restart_s, refused_s = restart_server(version, args.server)
        resumed_s = writes_resumed(restarted_url, process) - restart_began
        code = process.wait()
        restarted_wall_s = time.monotonic() - started
        reconnects = log.read_text(errors="replace").count("reconnecting to the warehouse")

        clean_log = work / "clean.log"
        clean_code, clean_wall_s, _ = common.run_sampled(command, envs[clean_url], clean_log)
        common.check(clean_code, clean_log, "clean run")

        rows = {
            table: (
                scalar(restarted_url, f"SELECT count(*) FROM {table}"),
                scalar(clean_url, f"SELECT count(*) FROM {table}"),
            )
            for table in COMPARED
        }
        duplicates = {t: duplicate_keys(restarted_url, t) for t in COMPARED}
        partial = partial_symbols(restarted_url)
        differences = state_differences(
            warehouse_state(restarted_url, COMPARED), warehouse_state(clean_url, COMPARED)
        )
        statuses = scalar(
            restarted_url, "SELECT count(*) FROM sync_stock_results WHERE status = 'ok'"
        )

    print(f"option_chains over {len(symbols)} symbols on PostgreSQL {version}, simulated chains")
    print(
        f"  run with a restart: exit code {code} ({'succeeded' if code == 0 else 'FAILED'}) "
        f"in {restarted_wall_s:.1f} s; clean run {clean_wall_s:.1f} s"
    )
    print(
        f"  restart after {before} outcomes: `pg_ctlcluster ... restart -m fast` took "
        f"{restart_s:.2f} s, new connections refused for {refused_s:.2f} s; the run logged "
        f"{reconnects} reconnect attempts and committed again {resumed_s:.2f} s after the "
        "restart began"
    )
    for table, (got, expected) in rows.items():
        print(
            f"  {table}: {got} rows (clean run {expected}), duplicate keys {duplicates[table]}, "
            f"rows differing {differences[table]}"
        )
    print(
        f"  outcome rows ok: {statuses}/{len(symbols)}; partially written symbols: {partial or 0}"
    )
    common.emit(
        {
            "benchmark": "db_restart",
            "symbols": len(symbols),
            "postgres": version,
            "run_exit_code": code,
            "run_wall_s": round(restarted_wall_s, 2),
            "clean_wall_s": round(clean_wall_s, 2),
            "outcomes_before_restart": before,
            "restart_command_s": round(restart_s, 2),
            "connections_refused_s": round(refused_s, 2),
            "reconnect_attempts_logged": reconnects,
            "writes_resumed_after_s": round(resumed_s, 2),
            "rows": {t: {"restarted": g, "clean": e} for t, (g, e) in rows.items()},
            "duplicate_keys": duplicates,
            "rows_differing": differences,
            "outcomes_ok": statuses,
            "partial_symbols": partial,
            "command": common.shown(command),
        }
    )


if __name__ == "__main__":
    main()
