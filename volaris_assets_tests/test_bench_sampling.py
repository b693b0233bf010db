"""The benchmarks' RSS sampler: its figures are the memory goals' evidence, so it must keep
sampling while the processes it watches come and go."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from bench.common import RssSampler, descendants


def test_descendants_survives_a_process_exiting_while_it_is_listed(monkeypatch) -> None:
    """The race (/proc/<pid> there when looked up, gone when listed) killed the sampler thread
    in a real `make bench`; it cannot be timed on purpose, so the listing is made to fail."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    listing = Path.iterdir

    def vanished(self: Path):
        if self == Path(f"/proc/{child.pid}/task"):
            raise FileNotFoundError(2, "No such file or directory", str(self))
        return listing(self)

    monkeypatch.setattr(Path, "iterdir", vanished)

    assert descendants(child.pid) == [child.pid]


def test_sampler_keeps_sampling_while_children_start_and_exit() -> None:
    """Each short-lived child vanishes between the sampler listing it and reading it."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys\n"
            "for _ in range(40):\n"
            "    subprocess.run([sys.executable, '-c', 'x = bytearray(30_000_000)'])\n",
        ]
    )
    with RssSampler([parent.pid], interval_s=0.005) as sampler:
        parent.wait()
        time.sleep(0.05)
        assert sampler._thread is not None and sampler._thread.is_alive()
    children_seen = {pid for _, _, per_pid in sampler.samples for pid in per_pid} - {parent.pid}

    assert children_seen, "no child was ever sampled"
    assert sampler.samples[-1][0] > sampler.samples[0][0]


def test_pss_counts_a_page_two_processes_share_once() -> None:
    """A parent holding 200 MB forks a child that only reads it: summed RSS counts the 200 MB
    twice, summed PSS (what the day replay reports beside it) once."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "held = b'x' * 200_000_000\n"
            "if os.fork() == 0:\n"
            "    time.sleep(1.5); os._exit(0)\n"
            "time.sleep(1.5); os.wait()\n",
        ]
    )
    with RssSampler([parent.pid], interval_s=0.05, track_pss=True) as sampler:
        parent.wait()
    two_processes = [total for _, total, per_pid in sampler.samples if len(per_pid) == 2]

    assert two_processes and max(two_processes) > 2 * 190  # 200 MB is 191 MiB
    assert 190 < sampler.pss_peak_mb < 0.7 * max(two_processes)
