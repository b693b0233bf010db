"""Market data for one capability (option chains, intraday bars, daily bars) as a Dagster resource.

The resource holds configuration only. `open()` builds the configured providers, wraps them in
rate limiting, retries and circuit breaking, and yields a fallback chain; the HTTP clients live for
that block (one per provider per step, inside the step's event loop) and are closed when it ends.
Circuit breakers are per process, shared by every chain the process opens; request budgets are
shared by every process spending the same provider account (`providers/budget/`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Literal

import dagster as dg
from pydantic import Field

from volaris_assets import redaction
from volaris_assets.providers import registry
from volaris_assets.providers.budget import BudgetConfig, Priority, open_budget
from volaris_assets.providers.pool import PooledChain
from volaris_assets.providers.rate_limit import RateLimit, parse_rate_limits
from volaris_assets.providers.resilience import (
    FallbackChain,
    ResilienceRegistry,
    RetrySettings,
    budget_limits,
)
from volaris_assets.providers.simulated import SimulatedMarket, SimulatedProvider

log = logging.getLogger(__name__)

# Resource field -> the environment variable name provider modules know it by.
SECRET_FIELDS: dict[str, str] = {
    "schwab_app_key": "SCHWAB_APP_KEY",
    "schwab_secret_key": "SCHWAB_SECRET_KEY",
    "schwab_refresh_token": "SCHWAB_REFRESH_TOKEN",
    "tiingo_api_key": "TIINGO_API_KEY",
    "alpaca_api_key": "ALPACA_API_KEY",
    "alpaca_api_secret": "ALPACA_API_SECRET",
    "polygon_api_key": "POLYGON_API_KEY",
    "finnhub_api_key": "FINNHUB_API_KEY",
    "databento_api_key": "DATABENTO_API_KEY",
    "robinhood_username": "ROBINHOOD_USERNAME",
    "robinhood_password": "ROBINHOOD_PASSWORD",
    "robinhood_device_token": "ROBINHOOD_DEVICE_TOKEN",
    "robinhood_mfa_secret": "ROBINHOOD_MFA_SECRET",
}
SETTING_FIELDS: dict[str, str] = {
    "schwab_refresh_token_issued_at": "SCHWAB_REFRESH_TOKEN_ISSUED_AT",
    "schwab_api_base": "SCHWAB_API_BASE",
    "tiingo_api_base": "TIINGO_API_BASE",
    "alpaca_api_base": "ALPACA_API_BASE",
    "polygon_api_base": "POLYGON_API_BASE",
    "finnhub_api_base": "FINNHUB_API_BASE",
    "databento_api_base": "DATABENTO_API_BASE",
    "yahoo_api_base": "YAHOO_API_BASE",
    "yahoo_cookie_url": "YAHOO_COOKIE_URL",
    "robinhood_api_base": "ROBINHOOD_API_BASE",
    "alpaca_feed": "ALPACA_FEED",
    "databento_dataset": "DATABENTO_DATASET",
    "max_response_mb": "VOLARIS_MAX_RESPONSE_MB",
}


class NoProviderAvailable(RuntimeError):
    """Every configured provider was skipped (no credentials, wrong capability...)."""


class MarketDataResource(dg.ConfigurableResource):
    """Provider chain for one capability; secrets arrive through `EnvVar` and are never logged."""

    capability: Literal["chain", "intraday", "daily"]
    providers: str = Field(
        default="simulated", description="Comma-separated provider order; the first is primary."
    )
    mode: Literal["fallback", "pool"] = Field(
        default="fallback",
        description="fallback: the next provider only when one fails; pool: symbols spread "
        "over every provider at once by budget, each falling back through the others.",
    )
    simulated_seed: int = 7
    concurrency: int = Field(default=16, description="Symbols fetched at once within a run.")
    retry_attempts: int = 5
    retry_base_s: float = 0.1
    retry_max_s: float = 16.0
    retry_jitter_s: float = 1.0
    breaker_failures: int = 5
    breaker_cooldown_s: float = 60.0
    rate_limits: str = Field(
        default="",
        description="Budgets replacing the defaults, e.g. 'polygon=100/1,schwab=120/60'.",
    )
    request_timeout_s: float = Field(
        default=20.0, description="Bound on one request end to end, retries aside."
    )
    shared_budget: bool = Field(
        default=True,
        description="Reserve every request in the provider budget shared by every process "
        "(Redis, the PostgreSQL warehouse, or a SQLite file on this host); off: this process "
        "paces alone.",
    )
    min_success_rate: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="A run writing fewer than this share of its symbols fails (it is an "
        "outage, not a partial success).",
    )

    schwab_app_key: str | None = None
    schwab_secret_key: str | None = None
    schwab_refresh_token: str | None = None
    tiingo_api_key: str | None = None
    alpaca_api_key: str | None = None
    alpaca_api_secret: str | None = None
    polygon_api_key: str | None = None
    finnhub_api_key: str | None = None
    databento_api_key: str | None = None
    robinhood_username: str | None = None
    robinhood_password: str | None = None
    robinhood_device_token: str | None = None
    robinhood_mfa_secret: str | None = None

    schwab_refresh_token_issued_at: str | None = None
    schwab_api_base: str | None = None
    tiingo_api_base: str | None = None
    alpaca_api_base: str | None = None
    polygon_api_base: str | None = None
    finnhub_api_base: str | None = None
    databento_api_base: str | None = None
    yahoo_api_base: str | None = None
    yahoo_cookie_url: str | None = None
    robinhood_api_base: str | None = None
    alpaca_feed: str | None = None
    databento_dataset: str | None = None
    max_response_mb: str | None = None

    def provider_settings(self) -> dict[str, str]:
        """Settings keyed by environment-variable name, as provider modules expect them."""
        values = {
            env: str(getattr(self, name) or "").strip()
            for name, env in {**SECRET_FIELDS, **SETTING_FIELDS}.items()
        }
        # Stripped as the settings check strips them: `EnvVar` binds a variable's raw value,
        # and a key read from a file with its newline was sent as an invalid header (an
        # httpx protocol error, counted against the provider as a server error).
        redaction.register(*(values[env] for env in SECRET_FIELDS.values()))
        return {key: value for key, value in values.items() if value}

    def provider_order(self) -> list[str]:
        return registry.parse_provider_list(self.providers)

    def schwab_token_days_left(self, now: datetime | None = None) -> float | None:
        """Days until the Schwab refresh token lapses, when Schwab is configured and its issue
        time is known; the token cannot be renewed without a person, so operators need warning."""
        if "schwab" not in self.provider_order() or not self.schwab_refresh_token:
            return None
        from volaris_assets.providers import schwab

        status = schwab.refresh_token_status(
            schwab.refresh_token_issued_at(self.provider_settings()), now
        )
        left = status.time_left(now or datetime.now(UTC))
        return None if left is None else round(left.total_seconds() / 86400, 2)

    @contextlib.asynccontextmanager
    async def open(
        self,
        *,
        start_with: str | None = None,
        logger: logging.Logger | None = None,
        priority: Priority = "fresh",
    ) -> AsyncIterator[FallbackChain]:
        """A fallback chain of the configured providers, closed when the block ends.

        `start_with` rotates the chain so that provider is tried first (the retry sensor asks
        for the fallback first). `priority` is the work's claim on the shared budget: fresh
        data goes before bulk work. Skipped providers are logged with their reason.
        """
        logger = logger or log
        sources, skipped = registry.build_sources(
            self.provider_order(),
            self.provider_settings(),
            self.capability,
            lambda: SimulatedProvider(_market(self.simulated_seed)),
        )
        for skip in skipped:
            logger.warning(
                "provider %s skipped for %s: %s", skip.provider, self.capability, skip.reason
            )
        if not sources:
            raise NoProviderAvailable(
                f"no {self.capability} provider is usable (configured: {self.providers!r}); "
                "see the warnings above, or unset the provider list to use the simulated market"
            )
        chain = self._registry().chain(sources, priority=priority)
        if self.mode == "pool":
            chain = PooledChain.from_chain(chain, self._registry().rate_limits)
        names = chain.providers
        chain = chain.rotated(start_with if start_with in names else None)
        try:
            yield chain
        finally:
            await chain.aclose()

    def _registry(self) -> ResilienceRegistry:
        return _resilience(
            self.retry_attempts,
            self.retry_base_s,
            self.retry_max_s,
            self.retry_jitter_s,
            self.breaker_failures,
            self.breaker_cooldown_s,
            self.request_timeout_s,
            self.rate_limits,
            BudgetConfig.from_env() if self.shared_budget else None,
        )

    def rate_limit(self, provider: str) -> RateLimit:
        """`provider`'s budget as configured for this deployment (defaults overridden by
        VOLARIS_RATE_LIMITS)."""
        return self._registry().rate_limits[provider]

    def budget_table(self) -> list[dict[str, object]]:
        """This capability's rate-limited providers' shared budgets as the store sees them now
        (pace, reserved in the last minute by every process, queue, pause, store), with this
        process's circuit breaker for each: run metadata. Blocking, one query; none when every
        provider is unlimited (the simulated market), so an offline run never touches a
        store."""
        registry_ = self._registry()
        mine = {
            name
            for name in self.provider_order()
            if math.isfinite(registry_.rate_limits[name].per_second)
        }
        if registry_.budget is None or not mine:
            return []
        return [
            {
                "provider": state.provider,
                "per_min": round(state.rate * 60, 1),
                "burst": state.burst,
                # Set when another process last reserved at another pace (`disagrees`).
                "other_pace_per_min": (
                    round(state.last_pace.rate * 60, 1)
                    if state.disagrees and state.last_pace
                    else None
                ),
                "reserved_last_60s": state.reserved_last_60s,
                "queue_s": round(state.wait_s, 2),
                "paused_until": state.paused_until.isoformat() if state.paused_until else None,
                "store": f"{state.backend} {state.where}",
                "shared": state.shared,
                "breaker": registry_.breaker(state.provider).state.value,
            }
            for state in registry_.budget.snapshot()
            if state.provider in mine
        ]


class HistoryDataResource(MarketDataResource):
    """Providers of past sessions' option chains (`VOLARIS_HISTORY_PROVIDERS`: Databento,
    Polygon, or the simulated market, which replays any day), asked through
    `providers.past_chains.HistoryChain`. A market-data resource in every respect, so every
    request of a bootstrap takes its turn in the shared provider budget with everyone else's."""

    capability: Literal["history"] = "history"  # type: ignore[assignment]


class ProfileDataResource(MarketDataResource):
    """Company-profile providers (`VOLARIS_PROFILE_PROVIDERS`); none configured is allowed:
    `company_profiles` then keeps the shipped sectors and says so."""

    capability: Literal["profile"] = "profile"  # type: ignore[assignment]
    providers: str = ""


@functools.cache
def _market(seed: int) -> SimulatedMarket:
    return SimulatedMarket(seed)


@functools.cache
def _resilience(
    attempts: int,
    base_s: float,
    max_s: float,
    jitter_s: float,
    failures: int,
    cooldown_s: float,
    timeout_s: float,
    rate_limits: str,
    budget: BudgetConfig | None,
) -> ResilienceRegistry:
    """One registry per process and configuration: one breaker per provider, and one budget
    per provider shared with every other process (or, without `budget`, this process's)."""
    limits = parse_rate_limits(rate_limits)
    return ResilienceRegistry(
        limits,
        budget=None if budget is None else open_budget(budget_limits(limits), budget),
        failure_threshold=failures,
        cooldown_s=cooldown_s,
        retry=RetrySettings(
            attempts=attempts,
            base_s=base_s,
            max_s=max_s,
            jitter_s=jitter_s,
            attempt_timeout_s=timeout_s,
        ),
    )
