"""Process measurements reported as materialization metadata, and read by `volaris-doctor`."""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProcessMemory:
    pid: int
    rss_mb: float
    peak_mb: float
    command: str


def process_memory(pid: int | str = "self") -> ProcessMemory | None:
    """A process's resident set and its high-water mark (VmRSS, VmHWM) from /proc; None once
    it has exited (or off Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
        command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        rss, peak = (int(fields[name].split()[0]) / 1024 for name in ("VmRSS", "VmHWM"))
    except (KeyError, ValueError, IndexError):
        return None  # a zombie has no memory lines
    return ProcessMemory(int(fields.get("Pid", "0").strip() or 0), rss, peak, command.strip())


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    On Linux this is the kernel's VmHWM, not `ru_maxrss`: a process started by fork or vfork
    and exec keeps its parent's high-water mark in `ru_maxrss`, so every run worker the daemon
    starts reported at least the daemon's own peak (a child of a 311 MB parent read 311 MB by
    `ru_maxrss` and 11 MB by VmHWM). Elsewhere `ru_maxrss` is all there is."""
    memory = process_memory()
    if memory is not None:
        return round(memory.peak_mb, 1)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
