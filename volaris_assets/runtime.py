"""Process measurements reported as materialization metadata."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    On Linux this is the kernel's VmHWM, not `ru_maxrss`: a process started by fork or vfork
    and exec keeps its parent's high-water mark in `ru_maxrss`, so every run worker the daemon
    starts reported at least the daemon's own peak (a child of a 311 MB parent read 311 MB by
    `ru_maxrss` and 11 MB by VmHWM). Elsewhere `ru_maxrss` is all there is."""
    try:
        status = Path("/proc/self/status").read_text(encoding="utf-8")
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return round(int(kb) / 1024, 1)
