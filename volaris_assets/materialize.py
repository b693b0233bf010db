"""Headless one-shot: materialize the latest completed session of every asset, print a summary.

    python -m volaris_assets.materialize [--session YYYY-MM-DD] [--verbose] [--log-file PATH]

Settings are validated before anything runs. Dagster's own event stream (hundreds of DEBUG lines
a run) goes to a log file whose path is printed, so the screen holds one summary line per asset
and, when something fails, one paragraph saying what and why; the first failure stops the rest,
since every later asset depends on the one that failed. Uses the Dagster instance in DAGSTER_HOME
when it is set (runs show up in the UI), an ephemeral one otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from volaris_assets import calendar, redaction, settings

if TYPE_CHECKING:  # Dagster and the assets are imported once the settings are known good
    import dagster as dg

SUMMARY_KEYS = (
    "symbols",
    "symbols_ok",
    "symbols_failed",
    "rows_written",
    "rows_rejected",
    "provider",
    "duration_s",
    "peak_rss_mb",
)
# Lines of an unexpected error's text shown on screen; the whole of it is in the log file.
ERROR_LINES = 4


def plan(
    session: calendar.Session, *, chains: bool = True
) -> list[tuple[list[dg.AssetsDefinition], str | None]]:
    """What to run, in dependency order: universe, the latest quotes (the bot's /price), the
    session's last snapshot, the dailies; `chains=False` leaves out the assets made of the
    session's option chains (see `live_chain_note`)."""
    from volaris_assets.options.assets import option_chains
    from volaris_assets.prices.assets import daily_bars, intraday_bars
    from volaris_assets.quotes.assets import quotes
    from volaris_assets.scan.assets import wheel_premiums
    from volaris_assets.universe.assets import scan_universe, sp500_constituents
    from volaris_assets.volatility.assets import iv_metrics

    last_snapshot = calendar.snapshot_key(calendar.snapshot_times(session.day)[-1])
    sessions = [daily_bars, intraday_bars] + ([iv_metrics, wheel_premiums] if chains else [])
    return [
        ([sp500_constituents, scan_universe], None),
        ([quotes], None),
        *([([option_chains], last_snapshot)] if chains else []),
        (sessions, session.day.isoformat()),
    ]


def live_chain_note(
    config: settings.Settings, session: calendar.Session, now: datetime
) -> str | None:
    """Why the session's chains cannot be fetched now, or None when they can: every chain
    provider configured is a live one, and its chain no longer stands for the session's last
    snapshot (`providers/live_chains.py`), so those assets would only fail, symbol by symbol."""
    from volaris_assets.providers.live_chains import LIVE_CHAIN_TOLERANCE
    from volaris_assets.providers.registry import SIMULATED, parse_provider_list

    providers = parse_provider_list(config.providers("chain"))
    last_snapshot = calendar.snapshot_times(session.day)[-1]
    behind = calendar.market_time_between(last_snapshot, now)
    if SIMULATED in providers or behind <= LIVE_CHAIN_TOLERANCE:
        return None
    return (
        f"skipping option_chains, iv_metrics and wheel_premiums: {', '.join(providers)} "
        f"serve{'s' if len(providers) == 1 else ''} only the current chain, and "
        f"{session.day}'s last snapshot is {behind.total_seconds() / 3600:.1f} trading hours "
        "old; run this after a session's close (until 45 minutes into the next) for them"
    )


def run(
    session: calendar.Session,
    instance: dg.DagsterInstance,
    config: settings.Settings,
    screen: TextIO | None = None,
) -> bool:
    """Materialize the plan group by group, printing to `screen` (default stdout) one line per
    asset; stop at the first group that fails, with its failure message."""
    import dagster as dg

    from volaris_assets.resources.definitions import resources

    screen = screen or sys.stdout
    bound = resources(config)
    note = live_chain_note(config, session, datetime.now(UTC))
    if note is not None:
        print(note, file=screen, flush=True)
    for assets, partition in plan(session, chains=note is None):
        result = dg.materialize(
            assets,
            partition_key=partition,
            resources=bound,
            instance=instance,
            raise_on_error=False,
        )
        for event in result.get_asset_materialization_events():
            print(_summary_line(event, partition), file=screen, flush=True)
        if not result.success:
            names = ", ".join(a.key.to_user_string() for a in assets)
            print(f"FAILED: {names} [{partition or '-'}]", file=screen)
            print(failure_message(result), file=screen, flush=True)
            return False
    return True


def _summary_line(event: dg.DagsterEvent, partition: str | None) -> str:
    metadata = event.materialization.metadata
    values = {k: getattr(metadata[k], "value", metadata[k]) for k in SUMMARY_KEYS if k in metadata}
    label = f"{event.asset_key.to_user_string()}[{partition or '-'}]"
    return f"{label:40} " + "  ".join(f"{k}={v}" for k, v in values.items())


def failure_message(result: dg.ExecuteInJobResult) -> str:
    """The first failed step's own words: a `dg.Failure`'s description (the platform raises
    those with one sentence for the user), else the innermost error of the chain, since the
    outer ones are Dagster saying that a step failed."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.user_failure_data and data.user_failure_data.description:
            return redaction.redact(data.user_failure_data.description)
        error = data.error
        while error and error.cause:
            error = error.cause
        if error:
            lines = error.to_string().strip().splitlines()
            text = "\n".join(line for line in lines if not line.startswith("  "))
            return redaction.redact("\n".join(text.splitlines()[:ERROR_LINES]))
    return "the run failed before any step started (see the log file)"


@contextlib.contextmanager
def _progress_on(screen: TextIO) -> Iterator[None]:
    """Show the fan-outs' progress lines and slow-budget warnings (`asset_support.announce`)
    on screen, while the rest of what a run logs goes to the log file."""
    progress = logging.getLogger("volaris_assets.progress")
    handler = logging.StreamHandler(screen)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    progress.propagate = False
    try:
        yield
    finally:
        progress.removeHandler(handler)


def default_log_file(config: settings.Settings) -> Path:
    home = Path(config.dagster_home) if config.dagster_home else Path("data")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return home / "logs" / f"materialize-{stamp}.log"


def chosen_session(day: date | None, now: datetime) -> calendar.Session:
    """The session to materialize: `day`, else the latest completed one. A day that is no
    session, has not closed by `now`, or lies before the partitions' first session
    (VOLARIS_FIRST_SESSION) is refused with what to ask for instead."""
    latest = calendar.last_completed_session(now)
    first = calendar.first_session()
    if day is None:
        if latest.day < first:
            raise ValueError(
                f"the latest completed session, {latest.day}, is before the first session "
                f"partition, {first} (VOLARIS_FIRST_SESSION): there is no session to "
                f"materialize until {first} closes, or set VOLARIS_FIRST_SESSION to {latest.day} "
                "or earlier"
            )
        return latest
    if day > latest.day:
        raise ValueError(f"{day} has not closed yet; the latest completed session is {latest.day}")
    if day < first:
        raise ValueError(
            f"{day} is before the first session partition, {first} (VOLARIS_FIRST_SESSION)"
        )
    if not calendar.is_session(day):
        earlier = calendar.previous_session(day).day
        raise ValueError(f"{day} is not an NYSE trading session; the one before it is {earlier}")
    return calendar.session(day)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", type=date.fromisoformat, help="session date (default: latest)")
    parser.add_argument("--verbose", action="store_true", help="show Dagster's event stream")
    parser.add_argument("--log-file", type=Path, help="where Dagster's event stream goes")
    args = parser.parse_args(argv)
    try:
        config = settings.load()
    except settings.SettingsError as error:
        print(error, file=sys.stderr)
        return 2
    try:
        session = chosen_session(args.session, datetime.now(calendar.UTC))
    except ValueError as error:
        print(f"--session: {error}" if args.session else str(error), file=sys.stderr)
        return 2
    simulated = any(
        config.providers(c).startswith("simulated") for c in ("chain", "intraday", "daily")
    )
    print(f"materializing session {session.day}" + (" (simulated market)" if simulated else ""))
    screen = sys.stdout
    with contextlib.ExitStack() as stack:
        stack.enter_context(_progress_on(screen))
        if not args.verbose:
            path = args.log_file or default_log_file(config)
            path.parent.mkdir(parents=True, exist_ok=True)
            print(f"Dagster's event log: {path} (--verbose shows it here)", flush=True)
            # Dagster's console logger and its import-time warnings write to whatever
            # sys.stderr is when they run: all of it goes to the file.
            event_log = stack.enter_context(path.open("a", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stderr(event_log))
            stack.enter_context(contextlib.redirect_stdout(event_log))
        import dagster as dg

        instance = stack.enter_context(
            dg.DagsterInstance.get() if config.dagster_home else dg.DagsterInstance.ephemeral()
        )
        return 0 if run(session, instance, config, screen) else 1


if __name__ == "__main__":
    sys.exit(main())
