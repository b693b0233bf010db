"""The wheel-scan summary: when `wheel_premiums` materializes, post how the scan went.

Symbols ok and failed, success rate, duration and rate, failures by category and the best
premiums come from the materialization's metadata; the failures themselves come from
`sync_stock_results` and go out as a CSV attachment, also written to
`<instance storage>/<run_id>/scan_failures.csv` (the seed's CSV export). A backfill over several
sessions materializes once per session in one run; it is summarised once.
"""

import csv
import io
import json
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
from dagster._time import get_current_timestamp

from volaris_assets.monitoring.links import run_url
from volaris_assets.monitoring.retry import RETRY_ATTEMPT_TAG
from volaris_assets.resources.notifier import DiscordNotifier, Severity
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

INTERVAL_S = 60
LOOKBACK_S = 3600.0
REMEMBERED_RUNS = 50
CSV_NAME = "scan_failures.csv"
CSV_COLUMNS = (
    "symbol",
    "status",
    "error_type",
    "error_message",
    "attempts",
    "provider",
    "duration_ms",
)
TOP_LINES = 5


def failures_csv(warehouse: Warehouse, run_id: str, asset: str) -> bytes:
    """The run's failed symbols as CSV (header only when none failed)."""
    results = tables.sync_stock_results
    query = (
        sa.select(*(results.c[name] for name in CSV_COLUMNS))
        .where(results.c.run_id == run_id, results.c.asset == asset, results.c.status != "ok")
        .order_by(results.c.symbol)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    with warehouse.engine.connect() as conn:
        writer.writerows(conn.execute(query))
    return buffer.getvalue().encode()


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
    description = premium_lines(top) or "no premiums in the delta band"
    categories = _value(metadata, "failures_by_category", {}) or {}
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
    instance: dg.DagsterInstance,
    record: dg.EventLogRecord,
    warehouse: Warehouse,
    notifier: DiscordNotifier,
) -> Path:
    """Write the failures CSV under the run's storage directory and post the summary."""
    run = instance.get_run_by_id(record.run_id)
    metadata = dict(record.asset_materialization.metadata)
    asset = wheel_premiums.key.to_user_string()
    content = failures_csv(warehouse, record.run_id, asset)
    path = Path(instance.storage_directory()) / record.run_id / CSV_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    title, description, fields, severity = summary_message(metadata, run)
    failed = int(fields["Failed"])
    notifier.notify(
        title,
        description,
        severity=severity,
        fields=fields,
        url=run_url(record.run_id),
        dedup_key=f"scan-summary:{record.run_id}",
        attachments={CSV_NAME: content} if failed else None,
    )
    return path


@dg.sensor(
    name="scan_summary_sensor",
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Posts the wheel scan's summary (success rate, duration, failures by category, "
    "top premiums, failures CSV) when `wheel_premiums` materializes.",
)
def scan_summary_sensor(
    context: dg.SensorEvaluationContext, warehouse: WarehouseResource, notifier: DiscordNotifier
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
    posted = []
    with warehouse.open() as wh:
        for record in records:
            state["after"] = record.storage_id
            if record.run_id in state["runs"]:
                continue
            path = summarise(context.instance, record, wh, notifier)
            context.log.info("scan summary for run %s, failures in %s", record.run_id, path)
            state["runs"] = [*state["runs"], record.run_id][-REMEMBERED_RUNS:]
            posted.append(record.run_id[:8])
    context.update_cursor(json.dumps(state))
    return dg.SkipReason(f"summaries posted: {', '.join(posted) or 'none'}")
