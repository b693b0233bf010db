"""Links into the Dagster UI for notifications (`DAGSTER_UI_URL`, default the local dev UI)."""

import os
from urllib.parse import quote

DEFAULT_UI_URL = "http://localhost:3000"


def ui_base(configured: str | None = None) -> str:
    return (configured or os.environ.get("DAGSTER_UI_URL") or DEFAULT_UI_URL).rstrip("/")


def run_url(run_id: str, base: str | None = None) -> str:
    return f"{ui_base(base)}/runs/{quote(run_id)}"


def asset_url(asset: str, base: str | None = None) -> str:
    """The asset's page ("prices/daily_bars" or "iv_metrics": the key's parts, slash-joined)."""
    return f"{ui_base(base)}/assets/{quote(asset)}"
