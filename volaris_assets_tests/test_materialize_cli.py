"""`python -m volaris_assets.materialize` as a user runs it, against broken infrastructure: a
warehouse that is down or read-only stops the run at the first failure with one short
paragraph (which database, never its password, and the fix), exit status 1, nothing written
anywhere else and the data intact. The run's event stream goes to the log file it names."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from volaris_assets import calendar, settings
from volaris_assets.materialize import chosen_session, live_chain_note, plan
from volaris_assets_tests.disks import tmpfs

CANARY = "materialize-canary-pw-5521"
SESSION = "2026-11-24"


def materialize(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in settings.fields()}
    return subprocess.run(
        [sys.executable, "-m", "volaris_assets.materialize", "--session", SESSION],
        env={**clean, "VOLARIS_UNIVERSE": "AAPL,MSFT,KO", **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def assert_short_failure(done: subprocess.CompletedProcess, *words: str) -> str:
    screen = done.stdout + done.stderr
    assert done.returncode == 1, screen
    assert len(screen.splitlines()) <= 20, screen
    assert "Traceback" not in screen
    assert CANARY not in screen
    for word in words:
        assert word in screen, screen
    return screen


def test_a_database_that_is_down_is_one_paragraph(tmp_path):
    port = closed_port()
    done = materialize(
        tmp_path,
        DATABASE_URL=f"postgresql://volaris:{CANARY}@127.0.0.1:{port}/volaris",
        VOLARIS_DB_RECONNECT_S="1",
    )
    screen = assert_short_failure(done, "refused the connection", f"127.0.0.1:{port}/volaris")
    assert screen.count("FAILED") == 1  # stopped at the first group
    assert not (tmp_path / "data" / "volaris.db").exists()  # nothing written elsewhere
    [log] = (tmp_path / "data" / "logs").glob("materialize-*.log")
    assert "STEP_FAILURE" in log.read_text() or "step failed" in log.read_text().lower()


def test_a_read_only_sqlite_warehouse_is_one_paragraph_and_stays_intact(tmp_path):
    path = tmp_path / "warehouse.db"
    assert materialize(tmp_path, DATABASE_URL=f"sqlite:///{path}").returncode == 0
    before = sqlite3.connect(path).execute("SELECT count(*) FROM option_contracts").fetchone()
    done = materialize(
        tmp_path,
        DATABASE_URL=f"sqlite:///file:{path}?mode=ro&uri=true",
        VOLARIS_DB_RECONNECT_S="1",
    )
    assert_short_failure(done, "read-only")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM option_contracts").fetchone() == before


def test_a_full_disk_is_one_paragraph_and_the_warehouse_stays_intact(tmp_path):
    """A 1 MB disk holds the universe but not a session's option chains."""
    with tmpfs(tmp_path / "disk", "1m") as disk:
        path = disk / "warehouse.db"
        done = materialize(tmp_path, DATABASE_URL=f"sqlite:///{path}", VOLARIS_DB_RECONNECT_S="1")
        assert_short_failure(done, "full")
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_a_session_that_cannot_be_materialized_is_refused_with_what_to_ask_for(
    tmp_path, monkeypatch
):
    """A weekend, a day that has not closed, a day before the partitions: one line each, exit
    2, nothing written; the line names the session to ask for instead."""
    monkeypatch.delenv("VOLARIS_FIRST_SESSION", raising=False)
    now = datetime(2026, 12, 7, 22, 0, tzinfo=UTC)  # Monday, after the close
    assert chosen_session(None, now).day == date(2026, 12, 7)
    assert chosen_session(date(2026, 12, 4), now).day == date(2026, 12, 4)
    refusals = {
        date(2026, 12, 6): "2026-12-06 is not an NYSE trading session; the one before it is "
        "2026-12-04",
        date(2026, 12, 8): "2026-12-08 has not closed yet; the latest completed session is "
        "2026-12-07",
        date(1995, 1, 3): "1995-01-03 is before the first session partition, 2000-01-03 "
        "(VOLARIS_FIRST_SESSION)",
    }
    for day, reason in refusals.items():
        with pytest.raises(ValueError) as refused:
            chosen_session(day, now)
        assert str(refused.value) == reason

    clean = {k: v for k, v in os.environ.items() if k not in settings.fields()}
    done = subprocess.run(
        [sys.executable, "-m", "volaris_assets.materialize", "--session", "2026-12-06"],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip() == f"--session: {refusals[date(2026, 12, 6)]}"
    assert not (tmp_path / "data").exists()


def test_a_first_session_after_the_latest_is_refused_before_anything_runs(tmp_path):
    """Without --session the latest completed session is asked for; a VOLARIS_FIRST_SESSION
    after it leaves no partition to ask for, which is said in one line (before: the universe and
    the chains ran, then an unknown-partition traceback)."""
    clean = {k: v for k, v in os.environ.items() if k not in settings.fields()}
    done = subprocess.run(
        [sys.executable, "-m", "volaris_assets.materialize"],
        env={**clean, "VOLARIS_FIRST_SESSION": "2080-01-02"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().startswith("the latest completed session, ")
    assert "before the first session partition, 2080-01-02 (VOLARIS_FIRST_SESSION)" in done.stderr
    assert not (tmp_path / "data").exists()


def test_the_chain_assets_are_left_out_when_only_live_providers_could_serve_a_past_session():
    live = settings.load(
        {
            "VOLARIS_CHAIN_PROVIDERS": "schwab",
            "SCHWAB_APP_KEY": "k",
            "SCHWAB_SECRET_KEY": "s",
            "SCHWAB_REFRESH_TOKEN": "t",
        }
    )
    friday = calendar.session(date(2026, 12, 4))
    evening = datetime(2026, 12, 4, 22, 0, tzinfo=UTC)  # its 15:45 snapshot is 15 minutes old
    monday = datetime(2026, 12, 7, 15, 30, tzinfo=UTC)  # 10:30 ET: an hour of trading since
    assert live_chain_note(live, friday, evening) is None
    note = live_chain_note(live, friday, monday)
    assert note == (
        "skipping option_chains, iv_metrics and wheel_premiums: schwab serves only the current "
        "chain, and 2026-12-04's last snapshot is 1.2 trading hours old; run this after a "
        "session's close (until 45 minutes into the next) for them"
    )
    assert live_chain_note(settings.load({}), friday, monday) is None  # the simulated market
    planned = [a.key.to_user_string() for assets, _ in plan(friday, chains=False) for a in assets]
    assert planned == [
        "sp500_constituents",
        "scan_universe",
        "quotes",
        "daily_bars",
        "intraday_bars",
    ]
