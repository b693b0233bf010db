"""The production instance (deploy/production/dagster.yaml: PostgreSQL storage, the queued run
coordinator, per-capability tag limits) with a real `dagster-daemon`: runs submitted through
the queue all succeed, and never more than one chain run is in progress at a time.

Dagster's storage is a fresh database on the local server; runs are submitted with
`dagster job launch` (the same path as the UI's launch button: the queue), and the test samples
the instance while the daemon dequeues them.
"""

from __future__ import annotations

import shutil
import time
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

from volaris_assets_tests.conftest import postgres_url
from volaris_assets_tests.reliability.databases import scratch_database
from volaris_assets_tests.reliability.market_setup import materialize_universe, subprocess_env
from volaris_assets_tests.reliability.processes import BIN, running, start_group

PRODUCTION = Path(__file__).resolve().parents[2] / "deploy" / "production" / "dagster.yaml"
CAPABILITY_TAG = "volaris/capability"
CHAIN_LIMIT = 1
SESSION = "2026-11-24"
CHAIN_RUNS = [("option_chains_job", f"{SESSION}-{time}") for time in ("10:00", "11:00")]
OTHER_RUNS = [("daily_bars_job", SESSION)]
WORKSPACE = """load_from:
  - python_module:
      module_name: volaris_assets.definitions
      location_name: volaris_assets
"""


def postgres_settings(storage_url: str) -> dict[str, str]:
    """DAGSTER_PG_* for the production yaml, pointing at `storage_url`."""
    url = sa.make_url(storage_url)
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database or "",
    }


def sample(instance: dg.DagsterInstance) -> tuple[Counter, Counter]:
    """(in progress, queued) run counts by capability tag."""
    in_progress = instance.get_runs(dg.RunsFilter(statuses=list(IN_PROGRESS_RUN_STATUSES)))
    queued = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]))
    return (
        Counter(r.tags.get(CAPABILITY_TAG, "-") for r in in_progress),
        Counter(r.tags.get(CAPABILITY_TAG, "-") for r in queued),
    )


@pytest.fixture
def production_home(tmp_path, monkeypatch) -> tuple[Path, dict[str, str]]:
    """DAGSTER_HOME holding the production dagster.yaml over a fresh storage database, and the
    environment the daemon and the launch commands share."""
    server = postgres_url()
    with (
        scratch_database(server, "dagster") as storage,
        scratch_database(server, "warehouse") as warehouse,
    ):
        home = tmp_path / "dagster_home"
        home.mkdir()
        shutil.copy(PRODUCTION, home / "dagster.yaml")
        (home / "workspace.yaml").write_text(WORKSPACE)
        env = subprocess_env(warehouse, str(home), **postgres_settings(storage))
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield home, env


def test_queue_holds_the_chain_limit_and_runs_succeed(production_home, tmp_path):
    home, env = production_home
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_retries_enabled and instance.run_monitoring_enabled
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {"key": CAPABILITY_TAG, "value": "chain", "limit": CHAIN_LIMIT} in limits
        assert materialize_universe(env["DATABASE_URL"], ["AAPL", "MSFT"], instance).success

        launches = [
            start_group(
                [
                    str(BIN / "dagster"),
                    "job",
                    "launch",
                    "-w",
                    str(home / "workspace.yaml"),
                    "-j",
                    job,
                    "--tags",
                    f'{{"dagster/partition": "{partition}"}}',
                ],
                env,
                tmp_path / f"launch_{index}.log",
            )
            for index, (job, partition) in enumerate(CHAIN_RUNS + OTHER_RUNS)
        ]
        for index, launch in enumerate(launches):
            assert launch.wait(timeout=120) == 0, (tmp_path / f"launch_{index}.log").read_text()
        submitted = {
            r.run_id for r in instance.get_runs(dg.RunsFilter(tags={"dagster/partition": SESSION}))
        } | {
            r.run_id
            for _, partition in CHAIN_RUNS
            for r in instance.get_runs(dg.RunsFilter(tags={"dagster/partition": partition}))
        }
        assert len(submitted) == len(CHAIN_RUNS) + len(OTHER_RUNS)
        assert all(instance.get_run_by_id(r).status.value == "QUEUED" for r in submitted)

        daemon = [str(BIN / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")]
        peak_chain, held_back = 0, False
        with running(daemon, env, tmp_path / "daemon.log", cwd=tmp_path):
            deadline = time.monotonic() + 150
            while time.monotonic() < deadline:
                in_progress, queued = sample(instance)
                peak_chain = max(peak_chain, in_progress["chain"])
                held_back |= in_progress["chain"] >= 1 and queued["chain"] >= 1
                statuses = [instance.get_run_by_id(r).status for r in submitted]
                if all(
                    s in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)
                    for s in statuses
                ):
                    break
                time.sleep(0.2)
            heartbeats = instance.get_daemon_heartbeats()

        outcome = {instance.get_run_by_id(r).status for r in submitted}
        log = (tmp_path / "daemon.log").read_text()[-4000:]
        assert outcome == {dg.DagsterRunStatus.SUCCESS}, log
        assert 1 <= peak_chain <= CHAIN_LIMIT
        assert held_back, "the chain runs never queued behind each other: the limit was not tested"
        assert {"QUEUED_RUN_COORDINATOR", "SCHEDULER", "SENSOR"} <= set(heartbeats)
        runs = [instance.get_run_by_id(r) for r in submitted]
        starts = sorted(
            (
                instance.get_run_record_by_id(r.run_id).start_time,
                instance.get_run_record_by_id(r.run_id).end_time,
            )
            for r in runs
            if r.tags.get(CAPABILITY_TAG) == "chain"
        )
        # The chain runs' lifetimes never overlap, as recorded by Dagster itself.
        assert all(
            end <= next_start for (_, end), (next_start, _) in zip(starts, starts[1:], strict=False)
        )
