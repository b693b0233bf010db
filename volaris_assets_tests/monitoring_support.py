"""Helpers for the checks and sensors tests: run checks alone, poke rows, a real notifier."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import dagster as dg
import sqlalchemy as sa

from volaris_assets.options.assets import option_chains
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import SESSION_ASSETS
from volaris_assets_tests.webhook_receiver import WebhookReceiver

ALL_ASSETS = [sp500_constituents, scan_universe, option_chains, *SESSION_ASSETS]


def run_checks(
    checks: Sequence[dg.AssetChecksDefinition],
    instance: dg.DagsterInstance,
    res: dict[str, object],
    partition_key: str | None = None,
) -> dict[str, dg.AssetCheckEvaluation]:
    """Execute only `checks` (no materialization), as the UI's "Execute checks" does; results
    keyed `asset:check`."""
    keys = {key for check in checks for key in check.check_keys}
    checked = {key.asset_key for key in keys}
    defs = dg.Definitions(
        assets=[asset for asset in ALL_ASSETS if asset.key in checked],
        asset_checks=checks,
        resources=res,
    )
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(), asset_check_selection=keys
    )
    result = job.execute_in_process(
        instance=instance, partition_key=partition_key, raise_on_error=False
    )
    return {e.asset_check_key.to_user_string(): e for e in result.get_asset_check_evaluations()}


def execute(url: str, statement: str, **params: object) -> None:
    warehouse = Warehouse(url)
    with warehouse.transaction() as conn:
        conn.execute(sa.text(statement), params)
    warehouse.dispose()


def scalar(url: str, query: str, **params: object) -> object:
    warehouse = Warehouse(url)
    with warehouse.engine.connect() as conn:
        value = conn.execute(sa.text(query), params).scalar()
    warehouse.dispose()
    return value


def notifier_for(receiver: WebhookReceiver, tmp_path: Path) -> DiscordNotifier:
    """A notifier posting to the loopback receiver, remembering sends in a file as production
    does (each sensor tick is a fresh process there)."""
    return DiscordNotifier(
        webhook_url=receiver.webhook_url(),
        dedup_db_path=str(tmp_path / "notifier-dedup.db"),
        backoff_s=0.01,
    )


def embeds(receiver: WebhookReceiver) -> list[dict]:
    """The embed of every message the receiver accepted."""
    return [r.payload["embeds"][0] for r in receiver.requests if r.status and r.status < 300]
