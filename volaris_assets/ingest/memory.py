"""Memory tooling: a warning when a run passes its threshold, and where the memory goes.

The system we replace shared a 512 MB box with the Discord bot and warned at 400 MB, before the
OOM killer at ~470 MB; nothing here did. `watch_memory` wraps a run's fan-out:

- a thread reads the process's resident set every second; the first time it passes
  `VOLARIS_MEMORY_WARN_MB` the run logs a WARNING and is tagged `volaris/memory_warning_mb`
  (the UI shows the tag; `monitoring/memory_alerts.py` posts it to Discord once per run). The
  tag is also what keeps a run of several assets to one warning. On the way out the kernel's
  high-water mark is compared too, so a spike between two readings is not missed;
- with `VOLARIS_TRACEMALLOC_TOP=N` (opt-in: tracing slows the run and takes memory of its own)
  Python's allocations are traced and the N source lines holding the most are recorded as an
  observation of the asset (metadata `top_allocations`, `traced_peak_mb`).

The same module reads other processes' memory for `volaris-doctor` (the daemon's).
"""

from __future__ import annotations

import contextlib
import os
import threading
import tracemalloc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import dagster as dg

from volaris_assets.runtime import ProcessMemory, peak_rss_mb, process_memory
from volaris_assets.settings import Settings

MEMORY_TAG = "volaris/memory_warning_mb"
MEMORY_SETTINGS = ("VOLARIS_MEMORY_WARN_MB", "VOLARIS_TRACEMALLOC_TOP")
POLL_S = 1.0
# Command-line fragments of the processes that run Dagster's daemon: `dagster-daemon run`,
# the one `dagster dev` starts, the small box's.
DAEMON_COMMANDS = (
    "dagster-daemon run",
    "dagster._daemon run",
    "volaris-daemon",
    "volaris_assets.small_box.daemon",
)


def daemon_processes(dagster_home: str) -> list[ProcessMemory]:
    """The Dagster daemon processes on this host serving the instance in `dagster_home` (other
    instances' daemons, a benchmark's or a colleague's, are none of its business)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        memory = process_memory(entry.name)
        if memory is None or not any(c in memory.command for c in DAEMON_COMMANDS):
            continue
        if _environment(entry.name).get("DAGSTER_HOME") == dagster_home:
            found.append(memory)
    return found


def _environment(pid: str) -> dict[str, str]:
    """A process's environment as it started (empty when it cannot be read)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {key.decode(errors="replace"): value.decode(errors="replace") for key, value in pairs}


class MemoryWatch:
    """Calls `on_exceed(mb)` once, the first time this process's RSS passes `threshold_mb`."""

    def __init__(
        self,
        threshold_mb: float,
        on_exceed: Callable[[float], None],
        read_mb: Callable[[], float | None] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        self.threshold_mb = threshold_mb
        self._on_exceed = on_exceed
        self._read_mb = read_mb or _current_rss_mb
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._fired = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="memory-watch", daemon=True)
        self._peak_before = 0.0

    def __enter__(self) -> MemoryWatch:
        self._peak_before = peak_rss_mb()
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        # The kernel's high-water mark catches a spike between two readings; it is the whole
        # process's, so it only counts if it rose while this block ran (`make materialize`
        # runs several runs in one process).
        peak = peak_rss_mb()
        if peak > self._peak_before:
            self.check(peak)

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    def check(self, mb: float | None) -> None:
        with self._lock:
            if mb is None or mb <= self.threshold_mb or self._fired.is_set():
                return
            self._fired.set()
        self._on_exceed(mb)

    def _loop(self) -> None:
        # A reading first: a run that starts past the threshold (its process already grown by
        # an earlier run, as under `make materialize`) warns even if it ends within one poll.
        while True:
            self.check(self._read_mb())
            if self._stop.wait(self._poll_s):
                return


def memory_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings with only the memory variables read from `env` (default: the process
    environment): the code location validated the whole environment before any run, and a
    run must not fail here over a variable that is none of this module's business."""
    source = os.environ if env is None else env
    return Settings.model_validate(
        {name: source[name].strip() for name in MEMORY_SETTINGS if source.get(name, "").strip()}
    )


@contextlib.contextmanager
def watch_memory(context: dg.AssetExecutionContext) -> Iterator[None]:
    """Watch the step's memory (see the module docstring); settings from the environment."""
    config = memory_settings()
    run_id = context.run.run_id

    def warn(mb: float) -> None:
        # Once per run: another asset of the same run may have warned already.
        run = context.instance.get_run_by_id(run_id)
        if run is not None and MEMORY_TAG in run.tags:
            return
        context.instance.add_run_tags(run_id, {MEMORY_TAG: f"{mb:.0f}"})
        context.log.warning(
            f"memory: this run's process is at {mb:.0f} MB, past VOLARIS_MEMORY_WARN_MB="
            f"{config.memory_warn_mb} (VOLARIS_TRACEMALLOC_TOP=15 records where it goes)"
        )

    with contextlib.ExitStack() as stack:
        if config.tracemalloc_top:
            stack.enter_context(_traced(context, config.tracemalloc_top))
        stack.enter_context(MemoryWatch(config.memory_warn_mb, warn))
        yield


@contextlib.contextmanager
def _traced(context: dg.AssetExecutionContext, top: int) -> Iterator[None]:
    """Trace allocations for the block; record the `top` source lines as an observation."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        yield
    finally:
        snapshot = tracemalloc.take_snapshot()
        peak = tracemalloc.get_traced_memory()[1]
        if started:
            tracemalloc.stop()
        context.log_event(
            dg.AssetObservation(
                asset_key=context.asset_key,
                metadata={
                    "top_allocations": dg.MetadataValue.md(top_allocations(snapshot, top)),
                    "traced_peak_mb": dg.MetadataValue.float(round(peak / 2**20, 1)),
                },
            )
        )


def top_allocations(snapshot: tracemalloc.Snapshot, top: int) -> str:
    """The `top` source lines holding the most memory in `snapshot`, as a Markdown table."""
    own = tracemalloc.Filter(False, tracemalloc.__file__)
    stats = snapshot.filter_traces([own]).statistics("lineno")[:top]
    lines = ["| MB | blocks | where |", "|---:|---:|---|"]
    for stat in stats:
        frame = stat.traceback[0]
        lines.append(
            f"| {stat.size / 2**20:.2f} | {stat.count} | {frame.filename}:{frame.lineno} |"
        )
    return "\n".join(lines)


def _current_rss_mb() -> float | None:
    memory = process_memory()
    return memory.rss_mb if memory is not None else None
