"""The daemon's sensor ticks: what evaluating every sensor, tick after tick, costs the process
that does it (the small box's daemon, or a code server), this tree against a git revision.

    python -m bench.bench_sensor_ticks [--baseline-rev HEAD] [--rounds 300]

A fresh interpreter per package (this tree, and `volaris_assets` as committed at
`--baseline-rev`, put first on PYTHONPATH) loads the code location and evaluates each sensor
`--rounds` times in turn, each with only the resources it asks for, as the daemon does: on a
fresh PostgreSQL warehouse (a database of its own on VOLARIS_TEST_DATABASE_URL's server),
Dagster storage in SQLite (the small box's dagster.yaml), the simulated market, nothing to alert
on. Reported per package: RSS after the first round (`warm_mb`: imports, first-use caches) and
after the last (`end_mb`), the growth between them per 100 rounds, and the CPU a round takes.
One round is every sensor once; the price-alert sensor ticks every 15 s, so 300 rounds are
~75 minutes of the daemon for it (the others tick every 30 s to an hour: they tick more here than
in a day, which is what makes a slow leak visible).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from bench import common
from bench.bench_db_restart import fresh_databases

SERVER = os.environ.get("VOLARIS_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE = "volaris_bench_sensor_ticks"

_PROBE = """
import json, sys, time
import dagster as dg
from volaris_assets.definitions import defs
from volaris_assets.runtime import process_memory

rounds = int(sys.argv[1])
repo = defs.get_repository_def()
resources = dict(repo.get_top_level_resources())
instance = dg.DagsterInstance.get()

def tick_all():
    for sensor in repo.sensor_defs:
        needed = {key: resources[key] for key in sensor.required_resource_keys}
        with dg.build_sensor_context(
            instance=instance, repository_def=repo, resources=needed
        ) as context:
            sensor.evaluate_tick(context)

tick_all()
warm = process_memory().rss_mb
started = time.process_time()
for _ in range(rounds - 1):
    tick_all()
cpu_s = time.process_time() - started
print(json.dumps({
    "sensors": len(repo.sensor_defs),
    "warm_mb": warm,
    "end_mb": process_memory().rss_mb,
    "cpu_ms_per_round": 1000 * cpu_s / max(rounds - 1, 1),
}))
"""


def measure(package_root: Path, work: Path, url: str, rounds: int) -> dict[str, float]:
    """Every sensor evaluated `rounds` times in one fresh interpreter importing `package_root`."""
    home = work / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text((common.ROOT / "deploy/small-box/dagster.yaml").read_text())
    env = common.run_env(work, PYTHONPATH=str(package_root), DATABASE_URL=url)
    figures = json.loads(common.run_probe(_PROBE, [str(rounds)], env, package_root, "sensor"))
    growth = figures["end_mb"] - figures["warm_mb"]
    return {
        "sensors": figures["sensors"],
        "warm_mb": round(figures["warm_mb"], 1),
        "end_mb": round(figures["end_mb"], 1),
        "growth_mb_per_100_rounds": round(100 * growth / max(rounds - 1, 1), 2),
        "cpu_ms_per_round": round(figures["cpu_ms_per_round"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="HEAD")
    parser.add_argument("--rounds", type=int, default=300)
    args = parser.parse_args()

    with common.workdir("sensor-ticks") as work, fresh_databases(SERVER, (DATABASE,)) as (url,):
        baseline_root = common.package_at(args.baseline_rev, work)
        baseline = measure(baseline_root, work / "baseline", url, args.rounds)
        current = measure(common.ROOT, work / "current", url, args.rounds)

    print(f"every sensor, {args.rounds} rounds, PostgreSQL warehouse: RSS warm -> end, CPU/round")
    for name, figures in ((args.baseline_rev, baseline), ("this tree", current)):
        print(
            f"  {name}: {figures['warm_mb']} -> {figures['end_mb']} MB "
            f"(+{figures['growth_mb_per_100_rounds']} MB per 100 rounds), "
            f"{figures['cpu_ms_per_round']} ms"
        )
    common.emit(
        {
            "bench": "sensor_ticks",
            "rounds": args.rounds,
            "baseline_rev": args.baseline_rev,
            "baseline": baseline,
            "current": current,
            "end_mb_ratio": round(current["end_mb"] / baseline["end_mb"], 3),
            "cpu_ratio": round(current["cpu_ms_per_round"] / baseline["cpu_ms_per_round"], 3),
        }
    )


if __name__ == "__main__":
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    main()
