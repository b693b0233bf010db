"""The wheel-scan summary: when `wheel_premiums` materializes, post how the scan went.

Symbols ok and failed, success rate, duration and rate, failures by category and the best
premiums come from the materialization's metadata. The scan's results CSV (one row per symbol,
`scan/results_csv.py`), which the run wrote and linked from its metadata (`scan_csv`), goes out
as an attachment when this process can read it, else its path is named. A scan with no premium
says why: every symbol failed (and how), or none had a put in the delta band. A backfill over
several sessions materializes once per session in one run; it is summarised once.
"""

import json
from pathlib import Path

import dagster as dg

from volaris_assets.dagster_internals import get_current_timestamp
from volaris_assets.monitoring.links import run_url
from volaris_assets.monitoring.retry import RETRY_ATTEMPT_TAG
from volaris_assets.notify.embeds import file_attachment
from volaris_assets.resources.notifier import DiscordNotifier, Sent, Severity
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.results_csv import METADATA_KEY

INTERVAL_S = 60
LOOKBACK_S = 3600.0
REMEMBERED_RUNS = 50
# A summary Discord refused is posted again each tick for this long, then left (logged as
# failed by the notifier): a day-old scan summary has been overtaken by the next scan.
GIVE_UP_S = 24 * 3600.0
TOP_LINES = 5


def _value(metadata: dict, key: str, default: object = None) -> object:
    entry = metadata.get(key)
    return default if entry is None else getattr(entry, "value", entry)


def premium_lines(top: list[dict]) -> str:
    return "\n".join(
        f"{p['symbol']} {p['strike']:g}P {p['expiration']}: ${p['premium']:.2f}"
        + (f" (Δ {p['delta']:+.2f})" if p.get("delta") is not None else "")
        + f", {p['annual_return']:.1%}/yr"
        for p in top[:TOP_LINES]
    )


def no_premium_reason(total: int, ok: int, categories: dict[str, int]) -> str:
    """Why a scan has no premium to show: nothing answered, or nothing was in the band."""
    failed = ", ".join(f"{k} {v}" for k, v in categories.items()) or "unknown errors"
    if total and not ok:
        return (
            f"No premiums: all {total} symbols failed ({failed}): a provider problem, not "
            "an empty delta band (each symbol's error is in the CSV)."
        )
    if total - ok:
        return (
            f"No puts in the delta band among the {ok} symbols scanned; "
            f"{total - ok} failed ({failed})."
        )
    return f"No puts in the delta band among the {ok} symbols scanned."


def summary_message(
    metadata: dict, run: dg.DagsterRun | None
) -> tuple[str, str, dict[str, str], Severity]:
    total = int(_value(metadata, "symbols_total", 0))
    ok = int(_value(metadata, "symbols_ok", 0))
    rate = float(_value(metadata, "success_rate", 0.0))
    attempt = run.tags.get(RETRY_ATTEMPT_TAG) if run is not None else None
    title = f"Wheel scan {_value(metadata, 'scan_date', '?')}: {ok}/{total} symbols ok ({rate:.1%})"
    if attempt:
        title += f", retry {attempt}"
    top = _value(metadata, "top_premiums", []) or []
    categories = _value(metadata, "failures_by_category", {}) or {}
    description = premium_lines(top) or no_premium_reason(total, ok, categories)
    fields = {
        "Symbols ok": str(ok),
        "Failed": str(total - ok),
        "Success rate": f"{rate:.1%}",
        "Duration": f"{float(_value(metadata, 'duration_s', 0.0)):.1f} s",
        "Symbols/s": f"{float(_value(metadata, 'symbols_per_s', 0.0)):.2f}",
        "Failures by category": ", ".join(f"{k}: {v}" for k, v in categories.items()) or "none",
        "Provider": str(_value(metadata, "provider", "?")),
    }
    severity = (
        Severity.SUCCESS if rate >= 0.99 else Severity.WARNING if rate >= 0.5 else Severity.ERROR
    )
    return title, description, fields, severity


def summarise(
    instance: dg.DagsterInstance, record: dg.EventLogRecord, notifier: DiscordNotifier
) -> tuple[Sent, str | None]:
    """Post the summary with the results CSV; what became of it, and the CSV's path (None if
    the run wrote none)."""
    run = instance.get_run_by_id(record.run_id)
    metadata = dict(record.asset_materialization.metadata)
    title, description, fields, severity = summary_message(metadata, run)
    path = _value(metadata, METADATA_KEY)
    content = file_attachment(str(path)) if path else None
    if path and content is None:
        fields["Results CSV"] = str(path)
    sent = notifier.send(
        title,
        description,
        severity=severity,
        fields=fields,
        url=run_url(record.run_id),
        dedup_key=f"scan-summary:{record.run_id}",
        attachments={Path(str(path)).name: content} if content is not None else None,
    )
    return sent, str(path) if path else None


@dg.sensor(
    name="scan_summary_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts the wheel scan's summary (success rate, duration, failures by category, "
    "top premiums, the per-symbol results CSV) when `wheel_premiums` materializes.",
)
def scan_summary_sensor(
    context: dg.SensorEvaluationContext, notifier: DiscordNotifier
) -> dg.SkipReason:
    state = json.loads(context.cursor) if context.cursor else {"after": None, "runs": []}
    first_tick_since = get_current_timestamp() - LOOKBACK_S
    records = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=wheel_premiums.key,
            after_storage_id=state["after"],
            after_timestamp=None if state["after"] is not None else first_tick_since,
        ),
        limit=200,
        ascending=True,
    ).records
    posted, waiting = [], ""
    for record in records:
        if record.run_id not in state["runs"]:
            sent, path = summarise(context.instance, record, notifier)
            if sent is Sent.FAILED and get_current_timestamp() - record.timestamp < GIVE_UP_S:
                # The cursor stays before it: the next tick posts it again.
                waiting = f"; run {record.run_id[:8]}'s failed, posted again next tick"
                break
            context.log.info(
                "scan summary for run %s (%s), results in %s", record.run_id, sent, path
            )
            state["runs"] = [*state["runs"], record.run_id][-REMEMBERED_RUNS:]
            posted.append(record.run_id[:8])
        state["after"] = record.storage_id
    context.update_cursor(json.dumps(state))
    return dg.SkipReason(f"summaries posted: {', '.join(posted) or 'none'}{waiting}")
