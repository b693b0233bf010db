"""Point the project's resources (or a subprocess's environment) at a sandbox, fast.

Everything here describes the sandbox's market at `AS_OF` (a Wednesday mid-session): the
option-chain snapshot key and session of that moment, and the retry timings that make fault
tests take seconds instead of the production 2-4-8-16 s backoff.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from volaris_assets import calendar
from volaris_assets.resources.market_data import SECRET_FIELDS, SETTING_FIELDS, MarketDataResource
from volaris_assets.sandbox.server import Sandbox
from volaris_assets.universe.assets import UniverseConfig, scan_universe, sp500_constituents
from volaris_assets_tests.pipeline_support import resources
from volaris_assets_tests.sandbox_fixtures import SANDBOX_AS_OF

AS_OF = SANDBOX_AS_OF
SESSION = "2026-03-11"
# The snapshot window the sandbox clock falls in (11:00 ET).
SNAPSHOT = calendar.snapshot_key(AS_OF)
# The option_chains run the crash and concurrency tests start as a real CLI process.
MATERIALIZE_CHAINS = [
    str(Path(sys.executable).with_name("dagster")),
    "asset",
    "materialize",
    "-m",
    "volaris_assets.definitions",
    "--select",
    "option_chains",
    "--partition",
    SNAPSHOT,
]
CHAIN_TABLES = ("tickers", "option_contracts", "option_snapshots")
FAST_RETRIES: dict[str, float] = {"retry_base_s": 0.01, "retry_max_s": 0.05, "retry_jitter_s": 0.01}


def credentials(sandbox: Sandbox) -> dict[str, str]:
    """`MarketDataResource` fields (keys and API bases) that reach `sandbox`."""
    settings = sandbox.settings()
    fields = {**SECRET_FIELDS, **SETTING_FIELDS}
    return {field: settings[env] for field, env in fields.items() if env in settings}


def sandbox_resources(
    sandbox: Sandbox, database_url: str, providers: str = "schwab", **tuning: object
) -> dict[str, object]:
    """The project's resources with every capability served by `providers` on the sandbox."""
    return resources(database_url, providers=providers, **credentials(sandbox), **tuning)


def chain_resource(sandbox: Sandbox, providers: str = "schwab", **tuning: object):
    return MarketDataResource(
        capability="chain", providers=providers, **credentials(sandbox), **tuning
    )


def subprocess_env(
    database_url: str,
    dagster_home: str,
    sandbox: Sandbox | None = None,
    chain_providers: str = "schwab",
    **extra: str,
) -> dict[str, str]:
    """The environment a `dagster` CLI run needs: this interpreter's PATH, the warehouse, an
    instance of its own and (with a sandbox) the chain provider reached through it.

    The nightly gap fill is moved half a day from now: a daemon under test that crossed its
    hour (03:00 UTC) launched a run per session missing data, which held the small box's one
    run slot past the tests' waits (a CI that started at 02:56 UTC failed two of them)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VOLARIS_", "DAGSTER_", "DATABASE_URL", "HISTORICAL_BACKFILL_"))
    }
    env["HISTORICAL_BACKFILL_CRON_HOUR"] = str((datetime.now(UTC).hour + 12) % 24)
    env.update(DATABASE_URL=database_url, DAGSTER_HOME=dagster_home, **extra)
    if sandbox is not None:
        env.update(sandbox.settings())
        env.update(VOLARIS_CHAIN_PROVIDERS=chain_providers, VOLARIS_RETRY_BASE_S="0.01")
    return env


def materialize_universe(
    database_url: str, symbols: Sequence[str], instance: dg.DagsterInstance
) -> dg.ExecuteInProcessResult:
    """Both universe assets over exactly `symbols` (the run config, not the environment)."""
    override = UniverseConfig(override=",".join(symbols))
    return dg.materialize(
        [sp500_constituents, scan_universe],
        resources=resources(database_url),
        instance=instance,
        run_config=dg.RunConfig({"sp500_constituents": override, "scan_universe": override}),
    )


def metadata_values(result: dg.ExecuteInProcessResult) -> Mapping[str, object]:
    """The first materialization's metadata as plain values."""
    event = result.get_asset_materialization_events()[0]
    return {k: getattr(v, "value", v) for k, v in event.materialization.metadata.items()}
