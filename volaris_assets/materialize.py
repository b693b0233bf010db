"""Headless one-shot: materialize the latest completed session of every asset, print a summary.

    python -m volaris_assets.materialize [--session YYYY-MM-DD]

Uses the Dagster instance in DAGSTER_HOME when it is set (runs show up in the UI), an ephemeral
one otherwise. The simulated market and SQLite are the defaults, as for `make dev`.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime

import dagster as dg

from volaris_assets import calendar
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.resources.definitions import resources
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.volatility.assets import iv_metrics

SUMMARY_KEYS = (
    "symbols_ok",
    "symbols_failed",
    "rows_written",
    "rows_rejected",
    "provider",
    "duration_s",
    "peak_rss_mb",
)


def plan(session: calendar.Session) -> list[tuple[list[dg.AssetsDefinition], str | None]]:
    """What to run, in dependency order: universe, the session's last snapshot, the dailies."""
    last_snapshot = calendar.snapshot_key(calendar.snapshot_times(session.day)[-1])
    return [
        ([sp500_constituents, scan_universe], None),
        ([option_chains], last_snapshot),
        ([daily_bars, intraday_bars, iv_metrics, wheel_premiums], session.day.isoformat()),
    ]


def run(session: calendar.Session, instance: dg.DagsterInstance) -> bool:
    ok = True
    for assets, partition in plan(session):
        result = dg.materialize(
            assets,
            partition_key=partition,
            resources=resources(),
            instance=instance,
            raise_on_error=False,
        )
        ok &= result.success
        for event in result.get_asset_materialization_events():
            metadata = event.materialization.metadata
            values = {
                k: getattr(metadata[k], "value", metadata[k]) for k in SUMMARY_KEYS if k in metadata
            }
            label = f"{event.asset_key.to_user_string()}[{partition or '-'}]"
            print(f"{label:40} " + "  ".join(f"{k}={v}" for k, v in values.items()))
        if not result.success:
            print(f"FAILED: {[a.key.to_user_string() for a in assets]} partition {partition}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", type=date.fromisoformat, help="session date (default: latest)")
    args = parser.parse_args(argv)
    session = (
        calendar.session(args.session)
        if args.session
        else calendar.last_completed_session(datetime.now(calendar.UTC))
    )
    print(f"materializing session {session.day} (simulated market unless providers are configured)")
    instance = dg.DagsterInstance.get() if _has_home() else dg.DagsterInstance.ephemeral()
    return 0 if run(session, instance) else 1


def _has_home() -> bool:
    import os

    return bool(os.environ.get("DAGSTER_HOME"))


if __name__ == "__main__":
    sys.exit(main())
