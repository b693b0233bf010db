"""Calendar depth: the code location's load time and the small-box daemon's RSS, this tree
against a git revision (default HEAD, the committed calendar).

    python -m bench.bench_calendar [--baseline-rev HEAD] [--loads 5] [--settle 20]

Load time: a fresh interpreter imports `volaris_assets.definitions` and builds the repository
and its snapshot (what the daemon, each run and the web UI do with the session and snapshot
partitions' exclusions); the median of `--loads` processes. Snapshot: the size of the
repository snapshot serialized, as a code server sends it to the web UI and the daemon (Dagster
copies each partitions' exclusion list into it once per asset, check and job). Daemon RSS:
`volaris-daemon` with the small box's dagster.yaml in a temp DAGSTER_HOME, its VmRSS after
`--settle` seconds (its schedules and sensors have ticked by then). The baseline is the same
three figures for the package as committed at `--baseline-rev` (`git archive`, extracted to a
temp dir and put first on PYTHONPATH), measured in the same invocation.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench import common

_LOAD_PROBE = (
    "import time; started = time.perf_counter()\n"
    "import dagster as dg, volaris_assets, volaris_assets.definitions as d\n"
    "dg.Definitions.validate_loadable(d.defs)\n"
    "loaded = time.perf_counter() - started\n"
    "from dagster._core.remote_representation.external_data import RepositorySnap\n"
    "from dagster._serdes import serialize_value\n"
    "snapshot = serialize_value(RepositorySnap.from_def(d.defs.get_repository_def()))\n"
    "print(loaded, len(snapshot), volaris_assets.__file__)\n"
)


def load_seconds(env: dict[str, str], loads: int) -> tuple[float, int]:
    """The median wall time of `loads` fresh loads of the code location, and the size of its
    serialized snapshot (what a code server sends the web UI and the daemon)."""
    figures = []
    snapshot_bytes = 0
    for _ in range(loads):
        out = subprocess.run(
            [common.PYTHON, "-W", "ignore", "-c", _LOAD_PROBE],
            env=env,
            cwd=env.get("VOLARIS_BENCH_CWD", str(common.ROOT)),
            capture_output=True,
            text=True,
        )
        if out.returncode != 0:
            raise SystemExit(f"loading the code location failed:\n{out.stderr[-3000:]}")
        seconds, snapshot_bytes = out.stdout.split()[:2]
        figures.append(float(seconds))
    return statistics.median(figures), int(snapshot_bytes)


def daemon_rss_mb(env: dict[str, str], work: Path, settle_s: float) -> float:
    """The daemon's VmRSS once it has run for `settle_s` seconds."""
    log = work / "daemon.log"
    process = common.start_group([common.PYTHON, "-m", "volaris_assets.small_box.daemon"], env, log)
    try:
        time.sleep(settle_s)
        rss = common.rss_mb(process.pid)
        if rss is None:
            common.check(1, log, "daemon")
        return float(rss)
    finally:
        common.stop_group(process)


def measure(package_root: Path, work: Path, loads: int, settle_s: float) -> dict[str, float]:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(common.ROOT / "deploy" / "small-box" / "dagster.yaml", home / "dagster.yaml")
    env = common.run_env(work, PYTHONPATH=str(package_root))
    env["VOLARIS_BENCH_CWD"] = str(package_root)
    load_s, snapshot_bytes = load_seconds(env, loads)
    return {
        "load_s": round(load_s, 3),
        "snapshot_mb": round(snapshot_bytes / 1e6, 2),
        "daemon_rss_mb": round(daemon_rss_mb(env, work, settle_s), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="HEAD")
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--settle", type=float, default=20.0)
    args = parser.parse_args()

    with common.workdir("calendar") as work:
        baseline_root = common.package_at(args.baseline_rev, work)
        baseline = measure(baseline_root, work / "baseline", args.loads, args.settle)
        current = measure(common.ROOT, work / "current", args.loads, args.settle)

    from volaris_assets import calendar

    print(f"code location load (median of {args.loads}), daemon RSS after {args.settle:.0f} s")
    print(
        f"  {args.baseline_rev}: {baseline['load_s']} s, {baseline['daemon_rss_mb']} MB; "
        f"snapshot {baseline['snapshot_mb']} MB"
    )
    print(
        f"  this tree (sessions {calendar.first_session()}..{calendar.CALENDAR_END}): "
        f"{current['load_s']} s, {current['daemon_rss_mb']} MB; "
        f"snapshot {current['snapshot_mb']} MB"
    )
    common.emit(
        {
            "bench": "calendar",
            "baseline_rev": args.baseline_rev,
            "baseline": baseline,
            "current": current,
            "load_ratio": round(current["load_s"] / baseline["load_s"], 3),
            "rss_ratio": round(current["daemon_rss_mb"] / baseline["daemon_rss_mb"], 3),
            "snapshot_ratio": round(current["snapshot_mb"] / baseline["snapshot_mb"], 3),
            "calendar_end": calendar.CALENDAR_END.isoformat(),
        }
    )


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    main()
