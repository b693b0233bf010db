"""One provider budget for every process: two concurrent runs and a retry run, each in a
process of its own, against one provider through its real client and the sandbox. The rate the
sandbox counted stays within the provider's limit over every 10-s window and its own window
refused nothing; with each process pacing alone, the same three runs draw three times the
budget (the second test shows the sandbox would see it). The warehouse, which also holds the
shared budget, is PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import dagster as dg
import pytest

from volaris_assets.prices.assets import daily_bars
from volaris_assets.providers.rate_limit import PACING_HEADROOM
from volaris_assets.sandbox.limits import RateLimit as WindowLimit
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets_tests.pipeline_support import metadata, resources, sandbox_market

PROVIDER = "polygon"
PER_S = 3
WINDOW_S = 10.0
UNIVERSE = [f"{a}{b}" for a in "ABCDE" for b in "ABCD"]  # 20 tickers the sandbox makes up


def spawn(spec: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "volaris_assets_tests.budget_runs", json.dumps(spec)],
        env=os.environ.copy(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def three_runs(sandbox, database_url: str, *, shared: bool) -> None:
    """Two sessions' daily bars and a retry of part of one, at once."""
    base = {
        "sandbox": sandbox.settings(),
        "provider": PROVIDER,
        "database_url": database_url,
        "tuning": {
            "rate_limits": f"{PROVIDER}={PER_S}/1:1",
            "shared_budget": shared,
            "concurrency": 4,
        },
    }
    specs = [
        {**base, "partition": "2026-03-09"},
        {**base, "partition": "2026-03-10"},
        {
            **base,
            "partition": "2026-03-10",
            "symbols": UNIVERSE[:10],
            "tags": {"volaris/retry_of": "an-earlier-run"},
        },
    ]
    processes = [spawn(spec) for spec in specs]
    for process in processes:
        _, errors = process.communicate(timeout=240)
        assert process.returncode == 0, errors[-3000:]


@pytest.fixture
def universe(pg_warehouse_url, monkeypatch, clean_sandbox) -> str:
    monkeypatch.setenv("VOLARIS_UNIVERSE", ",".join(UNIVERSE))
    monkeypatch.setenv("DATABASE_URL", pg_warehouse_url)  # the budget's shared store
    dg.materialize([sp500_constituents], resources=resources(pg_warehouse_url))
    clean_sandbox.set_rate_limit(PROVIDER, WindowLimit(requests=PER_S * 10, per_s=WINDOW_S))
    return pg_warehouse_url


def test_concurrent_runs_and_a_retry_share_one_budget(universe, clean_sandbox):
    three_runs(clean_sandbox, universe, shared=True)
    requests = clean_sandbox.stats.count(PROVIDER)
    assert requests >= 2 * len(UNIVERSE) + 10
    # A GCRA lets `burst` through at once per store; one store, burst 1, plus one for timing.
    assert clean_sandbox.stats.busiest(PROVIDER, WINDOW_S) <= PER_S * WINDOW_S + 2
    assert clean_sandbox.stats.window_refusals(PROVIDER) == 0


def test_without_the_shared_budget_the_sandbox_sees_the_overrun(universe, clean_sandbox):
    """The control: the same runs pacing alone overrun the provider's window."""
    clean_sandbox.set_rate_limit(PROVIDER, None)
    three_runs(clean_sandbox, universe, shared=False)
    assert clean_sandbox.stats.busiest(PROVIDER, WINDOW_S) > PER_S * WINDOW_S + 2


def test_a_run_reports_its_providers_shared_budget(universe, clean_sandbox, instance):
    """What the doctor prints, as the run's metadata: the pace and what every process reserved."""
    market = sandbox_market(clean_sandbox.settings(), PROVIDER, rate_limits=f"{PROVIDER}=3/1:1")
    result = dg.materialize(
        [daily_bars],
        partition_key="2026-03-10",
        resources=resources(universe, **market),
        instance=instance,
    )
    [budget] = metadata(result, "daily_bars")["provider_budget"]
    assert budget["provider"] == PROVIDER and budget["shared"]
    assert budget["per_min"] == pytest.approx(3 * 60 * PACING_HEADROOM, rel=0.01)
    assert budget["reserved_last_60s"] >= len(UNIVERSE)
    assert budget["store"].startswith("postgresql ")
