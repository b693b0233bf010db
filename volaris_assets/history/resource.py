"""The history tiers as a Dagster resource: where the cold files are, and the retention windows."""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from volaris_assets.history.cold import ColdStore
from volaris_assets.history.retention import Windows


class HistoryResource(dg.ConfigurableResource):
    """The cold store at `url` (data/history when unset) and the operational tables' windows."""

    url: str | None = Field(
        default=None, description="Directory or object-store URL; unset: data/history."
    )
    retain_results_days: int = Field(default=30, ge=1)
    retain_rejections_days: int = Field(default=30, ge=1)
    retain_intraday_days: int = Field(default=30, ge=1)

    def store(self) -> ColdStore:
        return ColdStore((self.url or "").strip() or None)  # EnvVar binds the raw value

    def windows(self) -> Windows:
        return Windows(
            sync_stock_results=self.retain_results_days,
            row_rejections=self.retain_rejections_days,
            intraday_bars=self.retain_intraday_days,
        )
