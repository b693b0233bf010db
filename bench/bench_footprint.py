"""Deployment footprint: the small box (daemon + code location + one run), total RSS, during a
full-universe run.

    python -m bench.bench_footprint [--quick] [--symbols 1205]

The small-box layout (deploy/small-box): `volaris-daemon`, Dagster's daemon with the code
location loaded in-process (no code server), Dagster storage in SQLite under DAGSTER_HOME, the
run started by the daemon's queue as a `dagster api execute_run` process of its own
(`LocalProcessRunLauncher`). The webserver is not running; it is started on demand. The run
is `wheel_scan_job` for one session over the whole scan universe (1,205 symbols, simulated
market), submitted with `dagster job launch`.

Every process's RSS is read from /proc every 0.2 s; the figure is the largest sum seen while the
run was in flight, with each process's share at that moment. PSS (shared library pages split
between the processes that map them) is printed beside it for information: it is read once a
second, at the largest sum so far whose processes all still live when it is read.

Baseline, same run: `dagster dev` with the repository's default instance (webserver, daemon,
code-server proxy and its gRPC child, the `dagster dev` parent) doing the same run.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import dagster as dg

from bench import common

SESSION = "2026-11-24"
JOB = "wheel_scan_job"
SMALL_BOX = common.ROOT / "deploy" / "small-box"
GOAL_MB = 400
SETTLE_S = 8.0


def role(pid: int) -> str:
    """A short name for a process of the deployment, from its command line."""
    command = common.command_line(pid)
    for needle, name in (
        ("execute_run", "run worker"),
        ("multiprocessing.spawn", "run worker"),
        ("resource_tracker", "multiprocessing resource tracker"),
        ("small_box.daemon", "daemon + code location"),
        ("api grpc", "code server (gRPC)"),
        ("code-server start", "code-server proxy"),
        ("dagster_webserver", "webserver"),
        ("dagster-webserver", "webserver"),
        ("_daemon", "daemon"),
        ("dagster-daemon", "daemon"),
        ("dagster dev", "dagster dev parent"),
        ("watch_orphans", "log watcher"),
        ("tail -F", "log tail"),
    ):
        if needle in command:
            return name
    return Path(command.split(" ")[0]).name or str(pid)


def name_new(roles: dict[int, str], pids: Iterable[int]) -> None:
    """Name the processes not yet in `roles`, while they live (a command line goes with its
    process), reading each one's /proc entry once rather than on every poll."""
    for pid in pids:
        if pid not in roles:
            roles[pid] = role(pid)


def launch(
    env: dict[str, str], workspace: Path, log: Path, job: str = JOB, partition: str = SESSION
) -> None:
    """Queue one partitioned run of `job`; the deployment's daemon picks it up."""
    command = [
        common.DAGSTER,
        "job",
        "launch",
        "-w",
        str(workspace),
        "-j",
        job,
        "--tags",
        json.dumps({"dagster/partition": partition}),
    ]
    with log.open("ab") as handle:
        subprocess.run(command, env=env, cwd=common.ROOT, stdout=handle, stderr=handle, check=True)


def runs_seen(home: Path) -> list[str]:
    """Every run the instance holds, as job:status (schedules and sensors may add their own)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [f"{r.job_name}:{r.status.value}" for r in instance.get_runs()]


def run_finished(home: Path) -> tuple[bool, str]:
    """Whether the latest run of JOB has finished, and its status."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=JOB), limit=1)
        if not runs:
            return False, "none"
        return runs[0].is_finished, runs[0].status.value


def observe(
    roots: list[int], home: Path, env: dict, workspace: Path, log: Path, timeout_s: float
) -> dict:
    """Idle figures (once runs the deployment starts by itself have ended), then launch the
    run and sample until it ends."""
    time.sleep(SETTLE_S)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and any(
        not run.endswith((":SUCCESS", ":FAILURE", ":CANCELED")) for run in runs_seen(home)
    ):
        time.sleep(1.0)
    time.sleep(2.0)
    idle = {pid: common.rss_mb(pid) or 0.0 for root in roots for pid in common.descendants(root)}
    roles = {pid: role(pid) for pid in idle}
    best: tuple[float, dict[int, float], float] = (0.0, {}, 0.0)
    launch(env, workspace, log)
    started = time.monotonic()
    status, seen_worker = "none", False
    with common.RssSampler(roots, interval_s=0.2) as sampler:
        while time.monotonic() - started < timeout_s:
            time.sleep(1.0)
            done, status = run_finished(home)
            latest = sampler.samples[-1] if sampler.samples else (0, 0.0, {})
            name_new(roles, latest[2])
            seen_worker |= any(roles[pid] == "run worker" for pid in latest[2])
            if latest[1] > best[0]:
                shares = [common.pss_mb(pid) for pid in latest[2]]
                if None not in shares:  # a process that ended since the sample would drop out
                    best = (latest[1], dict(latest[2]), sum(shares))
            if done:
                break
    for _, total, per_pid in sampler.samples:
        if total > best[0]:
            best = (total, dict(per_pid), best[2])
    by_role: dict[str, float] = {}
    for pid, value in best[1].items():
        name = roles.get(pid, str(pid))
        by_role[name] = round(by_role.get(name, 0.0) + value, 1)
    idle_by_role: dict[str, float] = {}
    for pid, value in idle.items():
        idle_by_role[roles[pid]] = round(idle_by_role.get(roles[pid], 0.0) + value, 1)
    return {
        "status": status,
        "runs": runs_seen(home),
        "run_worker_seen": seen_worker,
        "seconds": round(time.monotonic() - started, 1),
        "idle_total_mb": round(sum(idle.values()), 1),
        "idle_by_process_mb": idle_by_role,
        "peak_total_mb": round(best[0], 1),
        "peak_by_process_mb": by_role,
        "pss_at_peak_mb": round(best[2], 1),
    }


def small_box(work: Path, env: dict, timeout_s: float) -> dict:
    """deploy/small-box: `volaris-daemon` (daemon + code location in one process) and the run
    worker it starts; the web UI's workspace is only used here to launch the run."""
    shutil.copy(SMALL_BOX / "dagster.yaml", work / "home" / "dagster.yaml")
    daemon = common.start_group(
        [common.PYTHON, "-m", "volaris_assets.small_box.daemon"], env, work / "daemon.log"
    )
    try:
        return observe(
            [daemon.pid],
            work / "home",
            env,
            SMALL_BOX / "workspace.yaml",
            work / "launch.log",
            timeout_s,
        )
    finally:
        common.stop_group(daemon)


def dagster_dev(work: Path, env: dict, timeout_s: float) -> dict:
    """The default: `dagster dev` with dagster.yaml and workspace.yaml."""
    home = work / "home"
    shutil.copy(common.ROOT / "deploy" / "dev" / "dagster.yaml", home / "dagster.yaml")
    port = common.free_port()
    workspace = common.ROOT / "workspace.yaml"
    dev = common.start_group(
        [common.DAGSTER, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)],
        env,
        work / "dev.log",
    )
    try:
        common.wait_for_port(port, 90)
        return observe([dev.pid], home, env, workspace, work / "launch.log", timeout_s)
    finally:
        common.stop_group(dev, timeout_s=20)


def prepared(prefix: str, symbols: list[str]):
    """A work dir whose warehouse already holds the universe."""
    context = common.workdir(prefix)
    work = context.__enter__()
    csv = common.write_universe(work / "universe.csv", symbols)
    env = common.run_env(work, VOLARIS_UNIVERSE=str(csv))
    log = work / "universe.log"
    code, _, _ = common.run_sampled(
        common.dagster_materialize("sp500_constituents,scan_universe"), env, log
    )
    common.check(code, log, "universe")
    return context, work, env


def show(name: str, figures: dict) -> None:
    parts = ", ".join(f"{k} {v:.0f}" for k, v in sorted(figures["peak_by_process_mb"].items()))
    idle = ", ".join(f"{k} {v:.0f}" for k, v in sorted(figures["idle_by_process_mb"].items()))
    print(
        f"{name}: peak {figures['peak_total_mb']:.0f} MB RSS during the run ({parts}); "
        f"PSS {figures['pss_at_peak_mb']:.0f} MB; idle {figures['idle_total_mb']:.0f} MB "
        f"({idle}); run {figures['status']} in {figures['seconds']} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 symbols, no dagster dev baseline")
    parser.add_argument("--symbols", type=int, default=1205)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    symbols = common.universe(300 if args.quick else args.symbols)

    context, work, env = prepared("footprint", symbols)
    try:
        small = small_box(work, env, args.timeout)
    finally:
        context.__exit__(None, None, None)
    show("small box", small)
    record: dict[str, object] = {
        "benchmark": "footprint",
        "quick": args.quick,
        "symbols": len(symbols),
        "small_box": small,
        "goal_mb": GOAL_MB,
    }
    if not args.quick:
        context, work, env = prepared("footprint-dev", symbols)
        try:
            default = dagster_dev(work, env, args.timeout)
        finally:
            context.__exit__(None, None, None)
        show("dagster dev (default)", default)
        print(f"small box / dagster dev: {small['peak_total_mb'] / default['peak_total_mb']:.2f}")
        record["dagster_dev"] = default
        record["small_over_dev"] = round(small["peak_total_mb"] / default["peak_total_mb"], 3)
    common.emit(record)


if __name__ == "__main__":
    main()
