"""A run in a process of its own, for the shared-budget tests: `python -m
volaris_assets_tests.budget_runs SETTINGS_JSON` materializes daily_bars as the JSON says.

Separate processes are the point: a budget kept per process passes any single-process test."""

from __future__ import annotations

import json
import sys

import dagster as dg

from volaris_assets.prices.assets import daily_bars
from volaris_assets_tests.pipeline_support import resources, sandbox_market


def main(spec: dict) -> int:
    market = sandbox_market(spec["sandbox"], spec["provider"], **spec["tuning"])
    symbols = spec.get("symbols")
    result = dg.materialize(
        [daily_bars],
        partition_key=spec["partition"],
        resources=resources(spec["database_url"], **market),
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"daily_bars": {"config": {"symbols": symbols}}}} if symbols else None,
        tags=spec.get("tags", {}),
        raise_on_error=False,
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
