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
from pathlib import Path

from volaris_assets import settings
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
