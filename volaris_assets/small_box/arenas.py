"""glibc's malloc held to two arenas, in the daemon and in the run workers it starts.

glibc gives a thread that finds the heap busy an arena of its own, up to eight per core, and
memory freed in one arena is never handed to another. The daemon's threads (scheduler, sensors,
run queue, run monitoring) and a run's event loop, writer and main threads each kept a partly
empty arena. Measured by `python -m bench.bench_soak` (15 min, same machine, same hour): daemon
182 → 197 MB (+33 MB/h over the second half) with glibc's default, 176 → 189 MB (+13.5 MB/h)
with two arenas; run workers ~3 MB smaller; the scan's CPU per symbol unchanged.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def limit_arenas() -> bool:
    """Cap this process's arenas and let its children inherit the cap.

    Call before the process starts threads: arenas already made stay. A `MALLOC_ARENA_MAX` the
    operator set was applied by glibc when this process started, and is left alone. Returns
    whether the cap is in force (False where the C library is not glibc).
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return True
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    os.environ["MALLOC_ARENA_MAX"] = str(ARENAS)  # what glibc reads when a child starts
    return bool(mallopt(_M_ARENA_MAX, ARENAS))
