"""The morning digest as a Dagster job, scheduled at 09:30 ET on trading sessions.

A job (not a sensor) so that each digest is a run with its logs, and a failure to build it goes
through the run-failure alert like any other run. The message links to the IV metrics asset in
the UI (`DAGSTER_UI_URL`), where each symbol's history is plotted.
"""

import time
from datetime import date, datetime

import dagster as dg
from pydantic import Field

from volaris_assets import calendar
from volaris_assets.alerts.digest import build_digest
from volaris_assets.monitoring.links import asset_url
from volaris_assets.resources.notifier import DiscordNotifier, Sent, Severity
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.volatility.assets import iv_metrics


class DigestConfig(dg.Config):
    day: str | None = Field(
        default=None,
        description="The session (YYYY-MM-DD) the digest is posted on; default today (ET). It "
        "reports on the session before it.",
    )
    retry_waits_s: list[float] = Field(
        default=[30.0, 60.0, 120.0],
        description="Waits before posting again when Discord refused the digest (after the "
        "notifier's own quick retries): an outage of a few minutes delays the digest instead "
        "of losing it; past the last, the run fails and the run-failure alert says so.",
    )


@dg.op(description="Build the digest from the warehouse and post it to Discord.")
def post_daily_digest(
    context: dg.OpExecutionContext,
    config: DigestConfig,
    warehouse: WarehouseResource,
    notifier: DiscordNotifier,
) -> dg.Output[bool]:
    today = date.fromisoformat(config.day) if config.day else datetime.now(calendar.NY).date()
    with warehouse.open() as wh:
        digest = build_digest(wh, today)
    if digest.empty:
        context.log.warning("no bars or IV metrics for %s: digest not posted", digest.session)
        return dg.Output(False, metadata={"session": digest.session.isoformat()})

    def post() -> Sent:
        return notifier.send(
            f"Daily digest for {digest.session:%a %Y-%m-%d}",
            f"Moves against {digest.previous:%a %Y-%m-%d}; IV is 30-day ATM.",
            severity=Severity.INFO,
            fields=digest.fields(),
            url=asset_url(iv_metrics.key.to_user_string()),
            dedup_key=f"digest:{digest.session.isoformat()}",
        )

    sent = post()
    for wait in config.retry_waits_s:
        if sent is not Sent.FAILED:
            break
        context.log.warning("Discord refused the digest; posting again in %g s", wait)
        time.sleep(wait)
        sent = post()
    if sent is Sent.FAILED:
        raise dg.Failure(
            description=f"Discord refused the digest for {digest.session}: "
            f"{len(config.retry_waits_s) + 1} posts (each with the notifier's own retries), "
            f"{sum(config.retry_waits_s):g} s of waits between them"
        )
    posted = sent is Sent.SENT
    return dg.Output(posted, metadata={"session": digest.session.isoformat(), "posted": posted})


@dg.job(description="Post the morning digest: top movers, highest IV rank, biggest IV changes.")
def daily_digest_job() -> None:
    post_daily_digest()


@dg.schedule(
    name="daily_digest_schedule",
    job=daily_digest_job,
    cron_schedule="30 9 * * 1-5",
    execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="09:30 ET on NYSE sessions (holidays skipped).",
)
def daily_digest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
    tick = context.scheduled_execution_time
    day = tick.astimezone(calendar.NY).date()
    if not calendar.is_session(day):
        return dg.SkipReason(f"{day} is not a trading session")
    return dg.RunRequest(
        run_key=f"digest:{day.isoformat()}",
        run_config={"ops": {"post_daily_digest": {"config": {"day": day.isoformat()}}}},
    )
