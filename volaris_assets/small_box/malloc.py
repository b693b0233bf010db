"""glibc's malloc tuned for two long Python processes on a small box: the daemon and the run
workers it starts.

- **Two arenas** (`MALLOC_ARENA_MAX`). glibc gives a thread that finds the heap busy an arena of
  its own, up to eight per core, and memory freed in one arena is never handed to another. The
  daemon's threads (scheduler, sensors, run queue, run monitoring) and a run's event loop,
  writer and main threads each kept a partly empty arena. Measured by `python -m
  bench.bench_soak` (15 min, same machine, same hour): daemon 182 → 197 MB (+33 MB/h over the
  second half) with glibc's default, 176 → 189 MB (+13.5 MB/h) with two arenas; run workers
  ~3 MB smaller; the scan's CPU per symbol unchanged.
- **A fixed 128 KiB mmap threshold** (`MALLOC_MMAP_THRESHOLD_`). glibc serves a block of 128 KiB
  or more with an mmap of its own, returned to the system on free, but each such free raises
  the threshold to the block's size (up to 32 MiB), after which the decoded payloads, column
  buffers and SQL texts of a run come from the heap, where one live block pins the freed ones
  around it. Fixing the threshold keeps them in mappings of their own. Measured by `python -m
  bench.bench_memory --sizes 600` with two arenas, same hour: option_chains' run worker
  221.2 → 211.4 MB, an empty run 180.3 → 174.7 MB; the scan and intraday runs unchanged
  (192.0 / 196.6 → 191.9 / 195.9 MB). The scan's CPU per symbol is unchanged (15.6 → 15.4 ms,
  `python -m bench.bench_scan --rates 100`).

Both are applied to this process with `mallopt` (where the C library is glibc) and exported for
the processes it starts, whose glibc reads them at start. A value the operator set in the
environment was applied by glibc when this process started, and is left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

# Environment variable → (glibc's mallopt parameter number from malloc.h, value).
SETTINGS: dict[str, tuple[int, int]] = {
    "MALLOC_ARENA_MAX": (-8, 2),  # M_ARENA_MAX
    "MALLOC_MMAP_THRESHOLD_": (-3, 128 * 1024),  # M_MMAP_THRESHOLD
}


def tune_malloc() -> dict[str, str]:
    """Apply `SETTINGS` to this process and export them to its children; returns the settings
    in force (the operator's where set), or {} where the C library is not glibc.

    Call before the process starts threads: arenas already made stay.
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return {}
    in_force: dict[str, str] = {}
    for variable, (parameter, value) in SETTINGS.items():
        if variable not in os.environ:
            if not mallopt(parameter, value):
                continue
            os.environ[variable] = str(value)  # what glibc reads when a child starts
        in_force[variable] = os.environ[variable]
    return in_force
