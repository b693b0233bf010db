"""`peak_rss_mb`, the figure every materialization reports, measures its own process only."""

import subprocess
import sys

from volaris_assets.runtime import peak_rss_mb

GROWN_MB = 300


def _grow(mb: int) -> None:
    """Touch `mb` of fresh memory, then let it go: this process's high-water mark stays."""
    block = bytearray(mb * 1024 * 1024)
    for offset in range(0, len(block), 4096):
        block[offset] = 1
    del block


def test_a_run_worker_does_not_report_the_peak_of_the_process_that_started_it():
    """The daemon starts each run worker as this does (`subprocess.Popen`, a new session): with
    `ru_maxrss` the worker read the daemon's high-water mark as its own, so in a trading-day
    replay the intraday, IV and quotes runs all reported the daemon's 224.9 MB."""
    _grow(GROWN_MB)
    assert peak_rss_mb() >= GROWN_MB
    child = subprocess.run(
        [sys.executable, "-c", "from volaris_assets.runtime import peak_rss_mb as p; print(p())"],
        capture_output=True,
        text=True,
        check=True,
        start_new_session=True,
    )
    assert 1 < float(child.stdout) < GROWN_MB / 3
