"""`DiscordNotifier`: the one way the platform tells people something happened.

Notifications are a side channel: a missing webhook, Discord being down or rate limiting must
never fail the run or sensor that wanted to notify. `notify` therefore returns a bool and never
raises; a failure costs one WARNING line, which never contains the webhook URL.

Simulated data: when the simulated market is the primary provider of a capability
(`simulated_capabilities`, bound from the settings), every message says so in its title and
footer, so nobody mistakes a simulated scan or digest for the market.

Deduplication: a sensor that sees the same failure on every tick alerts once per
`dedup_window_s`. The memory of what was sent lives in SQLite at `dedup_db_path` (point it at a
file under DAGSTER_HOME or data/ in production, since each tick is a fresh process), or in memory
for the life of this resource object when the path is unset.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from dagster import ConfigurableResource, InitResourceContext, get_dagster_logger
from pydantic import Field, PrivateAttr

from volaris_assets.notify.dedup import DedupStore, alert_key
from volaris_assets.notify.delivery import RetryPolicy, deliver
from volaris_assets.notify.embeds import Message, Severity, build_message, clip

__all__ = ["DiscordNotifier", "Sent", "Severity"]

logger = get_dagster_logger(__name__)

_TITLE_IN_LOGS = 80
SIMULATED_TITLE = "[simulated] "


class Sent(enum.StrEnum):
    """What became of one notification. A caller that must know whether people have seen an
    alert (a recovery must follow a failure they saw) tells DUPLICATE (seen earlier) from
    FAILED and SKIPPED (never seen)."""

    SENT = "sent"
    DUPLICATE = "duplicate"
    SKIPPED = "skipped"
    FAILED = "failed"

    @property
    def seen(self) -> bool:
        return self in (Sent.SENT, Sent.DUPLICATE)


class DiscordNotifier(ConfigurableResource):
    """Posts embeds (and optional file attachments) to a Discord webhook."""

    webhook_url: str | None = Field(
        default=None,
        repr=False,
        description="Discord webhook URL (a secret; bind with EnvVar). Unset or empty: "
        "notifications are skipped.",
    )
    username: str = Field(default="Volaris", description="Name the messages are posted as.")
    dedup_window_s: float = Field(
        default=900, description="Seconds during which the same alert is not sent again."
    )
    dedup_db_path: str | None = Field(
        default=None,
        description="SQLite file remembering sent alerts across processes; unset: in memory.",
    )
    timeout_s: float = Field(default=5.0, description="Per-request HTTP timeout in seconds.")
    max_retries: int = Field(
        default=3, description="Retries after a 429, a 5xx, a timeout or a connection error."
    )
    backoff_s: float = Field(
        default=0.5, description="First wait before retrying a 5xx or network error; doubles."
    )
    simulated_capabilities: list[str] = Field(
        default_factory=list,
        description="Capabilities (chain, intraday, daily) whose primary provider is the "
        "simulated market: every message is marked as simulated data.",
    )

    _clock: Callable[[], float] = PrivateAttr(default=time.time)
    _dedup: DedupStore | None = PrivateAttr(default=None)

    def set_clock(self, clock: Callable[[], float]) -> None:
        """Replace the wall clock (seconds since the epoch) used for dedup windows and
        timestamps; tests pass a fake one to step over a window without sleeping."""
        self._clock = clock

    def notify(
        self,
        title: str,
        description: str,
        *,
        severity: Severity = Severity.INFO,
        fields: Mapping[str, str] | None = None,
        url: str | None = None,
        dedup_key: str | None = None,
        attachments: Mapping[str, bytes] | None = None,
    ) -> bool:
        """Send one embed; True only when Discord accepted it.

        False when no webhook is configured, when the same alert (`dedup_key`, or title and
        description) was sent within `dedup_window_s`, or when sending failed after retries.
        """
        sent = self.send(
            title,
            description,
            severity=severity,
            fields=fields,
            url=url,
            dedup_key=dedup_key,
            attachments=attachments,
        )
        return sent is Sent.SENT

    def send(
        self,
        title: str,
        description: str,
        *,
        severity: Severity = Severity.INFO,
        fields: Mapping[str, str] | None = None,
        url: str | None = None,
        dedup_key: str | None = None,
        attachments: Mapping[str, bytes] | None = None,
    ) -> Sent:
        """`notify`, telling why a message was not sent; never raises either."""
        short_title = clip(title, _TITLE_IN_LOGS)
        if not (self.webhook_url or "").strip():
            logger.info("Discord notification %r skipped (no webhook configured)", short_title)
            return Sent.SKIPPED
        try:
            return self._notify(
                title,
                description,
                severity=severity,
                fields=fields,
                url=url,
                dedup_key=dedup_key,
                attachments=attachments,
            )
        except Exception as exc:  # noqa: BLE001 - a notification must never break its caller
            # Only the class name: exception text from URL parsing or HTTP can quote the URL.
            logger.warning("Discord notification %r failed: %s", short_title, type(exc).__name__)
            return Sent.FAILED

    def teardown_after_execution(self, context: InitResourceContext) -> None:
        if self._dedup is not None:
            self._dedup.close()
            self._dedup = None

    def _notify(
        self,
        title: str,
        description: str,
        *,
        severity: Severity,
        fields: Mapping[str, str] | None,
        url: str | None,
        dedup_key: str | None,
        attachments: Mapping[str, bytes] | None,
    ) -> Sent:
        key = alert_key(title, description, dedup_key)
        now = self._clock()
        store = self._store()
        if not store.claim(key, now, self.dedup_window_s):
            logger.info(
                "Discord notification %r suppressed (duplicate within %gs)",
                clip(title, _TITLE_IN_LOGS),
                self.dedup_window_s,
            )
            return Sent.DUPLICATE
        delivered = False
        try:
            message = build_message(
                SIMULATED_TITLE + title if self.simulated_capabilities else title,
                description,
                severity=Severity(severity),
                username=self.username,
                timestamp=datetime.fromtimestamp(now, UTC),
                fields=fields,
                url=url,
                attachments=attachments,
                notes=self._simulated_note(),
            )
            delivered = self._deliver(clip(title, _TITLE_IN_LOGS), message)
        finally:
            if not delivered:
                # A failed alert must be retried by the next tick, not muted for a window.
                store.release(key, now)
        return Sent.SENT if delivered else Sent.FAILED

    def _simulated_note(self) -> list[str]:
        if not self.simulated_capabilities:
            return []
        which = ", ".join(self.simulated_capabilities)
        return [
            f"Simulated market data ({which}): not real quotes. Real providers are set in "
            "VOLARIS_CHAIN_PROVIDERS, VOLARIS_INTRADAY_PROVIDERS and VOLARIS_DAILY_PROVIDERS."
        ]

    def _deliver(self, short_title: str, message: Message) -> bool:
        policy = RetryPolicy(
            max_retries=self.max_retries, timeout_s=self.timeout_s, backoff_s=self.backoff_s
        )
        result = deliver(str(self.webhook_url).strip(), message, policy)
        if not result.delivered:
            logger.warning(
                "Discord notification %r failed after %d attempt(s): %s",
                short_title,
                result.attempts,
                result.detail,
            )
        return result.delivered

    def _store(self) -> DedupStore:
        if self._dedup is None:
            self._dedup = DedupStore(self.dedup_db_path)
        return self._dedup
