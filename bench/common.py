"""What the benchmarks share: the machine, universes, child processes, RSS sampling, results.

Every benchmark runs the project the way a user does (the `dagster` CLI, a separate sandbox
process, a fresh Dagster home and warehouse in a temp dir) and ends by printing one JSON line,
which `bench.run_all` collects.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
PYTHON = sys.executable
DAGSTER = str(Path(PYTHON).with_name("dagster"))
# Symbols the sandbox answers as unknown: never use them as padding.
_UNLISTED = {"ZZZZ", "NOPE"}
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def machine() -> dict[str, object]:
    """Where the figures were measured."""
    model = "unknown"
    with open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo", encoding="utf-8") as handle:
        total_kb = int(handle.readline().split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "mem_gib": round(total_kb / 1024 / 1024, 1),
        "python": platform.python_version(),
        # The machine may be shared: the load when the figures were taken says how much.
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def universe(size: int) -> list[str]:
    """`size` valid symbols: the shipped scan universe (S&P 500 + Nasdaq-100 + S&P 600, about
    1,120) in its own order, padded with synthetic four-letter tickers (QAAA, QAAB, ...), which
    the simulated market and the sandbox serve like any other symbol."""
    from volaris_assets.universe.constituents import SCAN_INDICES, index_members

    symbols = [m.symbol for m in index_members(SCAN_INDICES).members][:size]
    taken = set(symbols) | _UNLISTED
    for a in _LETTERS:
        for b in _LETTERS:
            for c in _LETTERS:
                if len(symbols) >= size:
                    return symbols
                candidate = f"Q{a}{b}{c}"
                if candidate not in taken:
                    symbols.append(candidate)
    return symbols


def write_universe(path: Path, symbols: Sequence[str]) -> Path:
    """A CSV for VOLARIS_UNIVERSE (a file, because 5,000 symbols is a long environment)."""
    path.write_text("symbol\n" + "\n".join(symbols) + "\n", encoding="utf-8")
    return path


@contextmanager
def workdir(prefix: str) -> Iterator[Path]:
    """A temp dir holding a Dagster home (SQLite storage, no telemetry) and the warehouse."""
    path = Path(tempfile.mkdtemp(prefix=f"volaris-bench-{prefix}-"))
    (path / "home").mkdir()
    (path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_env(work: Path, **extra: str) -> dict[str, str]:
    """Environment for a child run: the temp Dagster home and SQLite warehouse, simulated
    providers unless `extra` says otherwise, nothing inherited that points elsewhere."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VOLARIS_", "SCHWAB_", "DATABASE_URL", "DAGSTER_"))
    }
    env.update(
        DAGSTER_HOME=str(work / "home"),
        DATABASE_URL=f"sqlite:///{work / 'warehouse.db'}",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def dagster_materialize(select: str, *, partition: str | None = None, ranged: str | None = None):
    """The user's command line for one materialization of the project's code location."""
    command = [DAGSTER, "asset", "materialize", "-m", "volaris_assets.definitions", "-a", "defs"]
    command += ["--select", select]
    if partition:
        command += ["--partition", partition]
    if ranged:
        command += ["--partition-range", ranged]
    return command


def shown(command: Sequence[str]) -> str:
    """A command as a reader would type it (paths into the venv shortened)."""
    parts = [Path(p).name if p in (PYTHON, DAGSTER) else p for p in command]
    return " ".join(parts)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout_s} s")


def start_group(command: Sequence[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own process group (so it and its children stop together), with SIGINT
    restored: `dagster` started from a script otherwise ignores SIGINT and SIGTERM."""
    handle = log.open("wb")
    return subprocess.Popen(
        list(command),
        env=env,
        cwd=ROOT,
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def stop_group(process: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """SIGTERM the child's process group, SIGKILL it if it lingers."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout_s)
    except ProcessLookupError:
        pass


def _proc_mb(path: str, name: str) -> float | None:
    """The `name:` line of a /proc file that counts kB (status, smaps_rollup), in MB; None once
    the process has exited."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(f"{name}:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    """`pid`'s resident set size (or its high-water mark, field="VmHWM") in MB."""
    return _proc_mb(f"/proc/{pid}/status", field)


def pss_mb(pid: int) -> float | None:
    """`pid`'s proportional set size in MB: its private pages plus its share of each page it
    shares (a library's code, say, mapped by the daemon and a run worker alike). Summed over
    processes each page counts once, which summed RSS does not."""
    return _proc_mb(f"/proc/{pid}/smaps_rollup", "Pss")


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, from /proc/<pid>/task/*/children."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:  # exited since its parent listed it
            continue
        for task in tasks:
            try:
                children = (task / "children").read_text().split()
            except OSError:
                continue
            stack.extend(int(c) for c in children)
    return found


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass
class RssSampler:
    """Samples the summed RSS of the process trees under `roots` every `interval_s`.

    Each sample is (seconds since start, MB in total, {pid: MB}); `peak_mb` is the largest
    total, and `peak_by_pid` each process's own peak. Sampling can miss a spike shorter than
    the interval: with `track_hwm`, `hwm` keeps each process's last VmHWM (the kernel's own
    high-water mark) as well; with `track_pss`, `pss_peak_mb` is the largest summed PSS, the
    memory the tree really held (RSS counts a shared page once per process).
    """

    roots: list[int]
    interval_s: float = 0.1
    track_hwm: bool = False
    track_pss: bool = False
    pss_peak_mb: float = 0.0
    samples: list[tuple[float, float, dict[int, float]]] = field(default_factory=list)
    hwm: dict[int, float] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        started = time.monotonic()

        def loop() -> None:
            while not self._stop.is_set():
                per_pid: dict[int, float] = {}
                pss_total = 0.0
                for root in self.roots:
                    for pid in descendants(root):
                        value = rss_mb(pid)
                        if value is not None:
                            per_pid[pid] = value
                        if self.track_hwm and (high := rss_mb(pid, "VmHWM")) is not None:
                            self.hwm[pid] = high
                        if self.track_pss:
                            pss_total += pss_mb(pid) or 0.0
                self.pss_peak_mb = max(self.pss_peak_mb, pss_total)
                self.samples.append((time.monotonic() - started, sum(per_pid.values()), per_pid))
                self._stop.wait(self.interval_s)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max((total for _, total, _ in self.samples), default=0.0)

    def peak_by_pid(self) -> dict[int, float]:
        peaks: dict[int, float] = {}
        for _, _, per_pid in self.samples:
            for pid, value in per_pid.items():
                peaks[pid] = max(peaks.get(pid, 0.0), value)
        return peaks


def children_cpu_s() -> float:
    """CPU seconds (user + system) of every child process this one has waited for so far: the
    difference across a `run_sampled` call is that run's CPU, start-up included."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far, from /proc: what a
    server the benchmark started (the sandbox) spent, read before and after the timed part."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_sampled(
    command: Sequence[str], env: dict[str, str], log: Path, interval_s: float = 0.1
) -> tuple[int, float, RssSampler]:
    """Run `command` to completion while sampling its RSS; (exit code, wall s, sampler)."""
    started = time.perf_counter()
    process = start_group(command, env, log)
    with RssSampler([process.pid], interval_s) as sampler:
        code = process.wait()
    return code, time.perf_counter() - started, sampler


def materialization_metadata(home: Path, asset: str) -> dict[str, object]:
    """The latest materialization's metadata for `asset` in the Dagster home at `home`."""
    import dagster as dg

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            event = instance.get_latest_materialization_event(dg.AssetKey(asset))
            if event is None or event.asset_materialization is None:
                return {}
            meta = event.asset_materialization.metadata
            return {k: getattr(v, "value", v) for k, v in meta.items()}
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def run_count(home: Path) -> int:
    import dagster as dg

    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            return instance.get_runs_count()
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def check(code: int, log: Path, what: str) -> None:
    """Fail loudly with the log's tail when a child failed."""
    if code != 0:
        tail = log.read_text(errors="replace").splitlines()[-40:]
        raise SystemExit(f"{what} failed with exit code {code}:\n" + "\n".join(tail))


def package_at(rev: str, into: Path) -> Path:
    """`volaris_assets` as committed at `rev`, extracted under a fresh directory in `into`: put
    the returned root first on PYTHONPATH to measure that revision beside this tree."""
    root = Path(tempfile.mkdtemp(dir=into, prefix="baseline-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "volaris_assets"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive, check=True)
    return root


def run_probe(
    probe: str, args: Sequence[str], env: dict[str, str], package_root: Path, what: str
) -> str:
    """Run `probe` (Python source) in a fresh interpreter from `package_root` (put first on
    PYTHONPATH in `env` to measure that revision of the package); its last line of output.
    A failed probe ends the benchmark with its error output."""
    out = subprocess.run(
        [PYTHON, "-W", "ignore", "-c", probe, *args],
        env=env,
        cwd=str(package_root),
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        raise SystemExit(f"the {what} probe failed:\n{out.stderr[-3000:]}")
    return out.stdout.strip().splitlines()[-1]


def emit(record: dict[str, object]) -> None:
    """The benchmark's last line: its figures as JSON, for `bench.run_all`."""
    print(json.dumps({**record, "machine": machine()}), flush=True)
