"""Roll a run's symbol outcomes up into the numbers an operator looks at."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from volaris_assets.ingest.fanout import SymbolOutcome
from volaris_assets.runtime import peak_rss_mb


@dataclass(frozen=True)
class RunSummary:
    outcomes: Sequence[SymbolOutcome]
    duration_s: float
    schwab_token_days_left: float | None = None
    # Each provider's shared budget as the run ended (`MarketDataResource.budget_table`).
    provider_budgets: Sequence[dict[str, Any]] = ()
    # The event loop's largest delay during the fan-out (`loop_lag.LoopLag`).
    loop_lag_max_s: float | None = None

    @property
    def ok(self) -> list[SymbolOutcome]:
        return [o for o in self.outcomes if o.status == "ok"]

    @property
    def failed(self) -> list[SymbolOutcome]:
        return [o for o in self.outcomes if o.status != "ok"]

    @property
    def rows_written(self) -> int:
        return sum(o.rows_written for o in self.outcomes)

    @property
    def rows_rejected(self) -> int:
        return sum(o.rows_rejected for o in self.outcomes)

    @property
    def success_rate(self) -> float:
        return len(self.ok) / len(self.outcomes) if self.outcomes else 1.0

    @property
    def symbols_per_s(self) -> float:
        return len(self.outcomes) / self.duration_s if self.duration_s > 0 else 0.0

    def failures_by_category(self) -> dict[str, int]:
        return dict(Counter(o.error_type or "unknown" for o in self.failed).most_common())

    def providers(self) -> dict[str, int]:
        return dict(Counter(o.provider for o in self.ok if o.provider).most_common())

    def requests_by_provider(self) -> dict[str, int]:
        """Requests sent, by provider: what the run spent of each budget.

        An outcome's requests count under its provider (the one that answered, or the one its
        failure is charged to; "unknown" when none is). A symbol that fell back also counts
        the requests the providers before it spent under the one that answered: an outcome
        does not keep them apart.
        """
        requests: Counter[str] = Counter()
        for outcome in self.outcomes:
            if outcome.attempts:
                requests[outcome.provider or "unknown"] += outcome.attempts
        return dict(requests.most_common())

    def rejections_by_reason(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for outcome in self.outcomes:
            total.update(outcome.rejected)
        return dict(total.most_common())

    def metadata(self, **extra: Any) -> dict[str, Any]:
        """Materialization metadata; numbers stay numeric so the UI can plot them over time."""
        providers = self.providers()
        return {
            "rows_written": dg.MetadataValue.int(self.rows_written),
            "rows_rejected": dg.MetadataValue.int(self.rows_rejected),
            "symbols_total": dg.MetadataValue.int(len(self.outcomes)),
            "symbols_ok": dg.MetadataValue.int(len(self.ok)),
            "symbols_failed": dg.MetadataValue.int(len(self.failed)),
            "success_rate": dg.MetadataValue.float(round(self.success_rate, 4)),
            "failures_by_category": dg.MetadataValue.json(self.failures_by_category()),
            "rejections_by_reason": dg.MetadataValue.json(self.rejections_by_reason()),
            "provider": dg.MetadataValue.text(next(iter(providers), "none")),
            "providers": dg.MetadataValue.json(providers),
            "requests_by_provider": dg.MetadataValue.json(self.requests_by_provider()),
            "failed_symbols": dg.MetadataValue.json(sorted(o.symbol for o in self.failed)[:200]),
            "duration_s": dg.MetadataValue.float(round(self.duration_s, 3)),
            "symbols_per_s": dg.MetadataValue.float(round(self.symbols_per_s, 3)),
            "peak_rss_mb": dg.MetadataValue.float(peak_rss_mb()),
            **(
                {
                    "schwab_refresh_token_days_left": dg.MetadataValue.float(
                        self.schwab_token_days_left
                    )
                }
                if self.schwab_token_days_left is not None
                else {}
            ),
            **(
                {"provider_budget": dg.MetadataValue.json(list(self.provider_budgets))}
                if self.provider_budgets
                else {}
            ),
            **(
                {"loop_lag_max_s": dg.MetadataValue.float(round(self.loop_lag_max_s, 3))}
                if self.loop_lag_max_s is not None
                else {}
            ),
            **extra,
        }
