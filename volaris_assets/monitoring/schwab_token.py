"""Warn before the Schwab refresh token lapses.

Schwab's refresh token lives 7 days and only a human can get a new one (a browser login), so the
platform says so two days ahead, once a day, until the token is replaced. The issue time comes
from `SCHWAB_REFRESH_TOKEN_ISSUED_AT` through the market-data resources; without it the expiry is
unknown and the sensor says so in its skip reason.
"""

import json
from datetime import datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets.dagster_internals import get_current_datetime
from volaris_assets.providers import schwab
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.notifier import DiscordNotifier, Severity

INTERVAL_S = 3600


def refresh_token_status(
    market: MarketDataResource, now: datetime
) -> schwab.RefreshTokenStatus | None:
    """The token's status per the Schwab module, or None when Schwab is not configured."""
    settings = market.provider_settings()
    if not all(settings.get(name) for name in schwab.REQUIRED_SETTINGS):
        return None
    return schwab.refresh_token_status(schwab.refresh_token_issued_at(settings), now)


def warning_message(status: schwab.RefreshTokenStatus, now: datetime) -> tuple[str, str, Severity]:
    left = status.time_left(now)
    expires = status.expires_at.astimezone(calendar.NY).strftime("%Y-%m-%d %H:%M ET")
    if left is not None and left.total_seconds() <= 0:
        return (
            "Schwab refresh token expired",
            f"It expired {expires}; Schwab requests fail until someone logs in again.",
            Severity.ERROR,
        )
    hours = left.total_seconds() / 3600 if left is not None else 0.0
    return (
        "Schwab refresh token expires soon",
        f"It expires {expires} (in {hours:.0f} h). Log in to Schwab, then set "
        "SCHWAB_REFRESH_TOKEN and SCHWAB_REFRESH_TOKEN_ISSUED_AT to the new token and its time.",
        Severity.WARNING,
    )


def make_schwab_token_sensor(name: str = "schwab_token_sensor") -> dg.SensorDefinition:
    @dg.sensor(
        name=name,
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Warns on Discord (once a day) when the Schwab refresh token expires within "
        "two days.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        chain_data: MarketDataResource,
        intraday_data: MarketDataResource,
        daily_data: MarketDataResource,
        notifier: DiscordNotifier,
    ) -> dg.SkipReason:
        markets = [
            m for m in (chain_data, intraday_data, daily_data) if "schwab" in m.provider_order()
        ]
        if not markets:
            return dg.SkipReason("Schwab is in no provider chain")
        now = get_current_datetime()
        status = refresh_token_status(markets[0], now)
        if status is None:
            return dg.SkipReason("Schwab credentials are not configured")
        if status.expires_at is None:
            return dg.SkipReason("SCHWAB_REFRESH_TOKEN_ISSUED_AT unset: expiry unknown")
        if not status.relogin_soon:
            return dg.SkipReason(f"refresh token valid until {status.expires_at.isoformat()}")
        today = now.astimezone(calendar.NY).date().isoformat()
        warned = json.loads(context.cursor) if context.cursor else {}
        if warned.get("expires_at") == status.expires_at.isoformat() and warned.get("on") == today:
            return dg.SkipReason("already warned today")
        title, description, severity = warning_message(status, now)
        notifier.notify(title, description, severity=severity, dedup_key=f"schwab-token:{today}")
        context.update_cursor(
            json.dumps({"expires_at": status.expires_at.isoformat(), "on": today})
        )
        return dg.SkipReason(title)

    return _sensor
