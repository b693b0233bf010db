"""Start and stop whole process trees the way an operator's supervisor would.

Dagster's CLIs start children (code servers, run workers); a test that only kills the parent
leaks them. Each process here leads its own session (so a signal reaches the whole group), with
SIGINT and SIGTERM at their defaults: `dagster dev` started from a script otherwise inherits
SIGINT ignored and then ignores SIGTERM too (dagster-notes.md, "Stopping dagster dev").
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_group(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> subprocess.Popen:
    """Start `command` as the leader of a new process group, output to `log_path`."""
    log = log_path.open("ab")
    try:
        return subprocess.Popen(
            list(command),
            env=dict(env),
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_default_signals,
        )
    finally:
        log.close()


def stop_group(process: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after `grace_s`."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        pass
    kill_group(process)


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL every process of the group (a crash: nothing gets to clean up)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    # Children that outlived the leader still carry its group id.
    deadline = time.monotonic() + 5
    while _group_alive(process.pid) and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """Whether any process of the group still runs (zombies wait for init and do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


@contextlib.contextmanager
def running(
    command: Sequence[str], env: Mapping[str, str], log_path: Path, cwd: Path | None = None
) -> Iterator[subprocess.Popen]:
    """`start_group` for the length of a block; the group is stopped however the block ends."""
    process = start_group(command, env, log_path, cwd)
    try:
        yield process
    finally:
        stop_group(process)


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    """Poll `predicate` until it returns something truthy; fail with `what` on timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for {what}")
