"""Checks on price bars: coverage, consistent daily bars, and a clean 1-minute grid per session.

The minute-grid check knows the calendar: a session's bars must lie within its own open and
close (13:00 ET on an early close), on whole minutes, with at most a few minutes missing between
the open and the latest bar. Minutes after the latest bar are not counted as missing: providers
deliver with a delay, and lateness is the freshness check's business.
"""

from collections.abc import Iterator
from datetime import datetime, time, timedelta

import dagster as dg
import pandas as pd
import sqlalchemy as sa

from volaris_assets import calendar
from volaris_assets.checks.coverage import coverage_check, latest_outcomes
from volaris_assets.checks.violations import count_violations
from volaris_assets.ingest.range_metadata import with_range
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

MAX_MISSING_FRACTION = 0.02
MAX_MISSING_MINUTES = 3
SYMBOLS_PER_READ = 16
EMPTY_GRID = pd.DataFrame(
    {"symbol": [], "outside": 0, "off_grid": 0, "missing": 0, "expected": 0, "session": []}
)


def check_sessions(context: dg.AssetCheckExecutionContext) -> list[calendar.Session]:
    keys = context.partition_key_range
    return calendar.sessions_between(
        calendar.session_day(keys.start), calendar.session_day(keys.end)
    )


@dg.asset_check(
    asset=daily_bars,
    name="daily_bars_consistent",
    partitions_def=daily_bars.partitions_def,
    description="Every `1d` bar of the partition's sessions has positive prices, a high at or "
    "above its open and close, a low at or below them, and a non-negative volume.",
)
def daily_bars_consistent(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    bars = tables.price_bars
    stamps = [
        datetime.combine(s.day, time(0), tzinfo=calendar.UTC) for s in check_sessions(context)
    ]
    with warehouse.open() as wh:
        found = count_violations(
            wh,
            bars,
            sa.and_(bars.c.timeframe == "1d", bars.c.ts.in_([wh.instant(t) for t in stamps])),
            {
                "nonpositive_price": sa.or_(
                    bars.c.open <= 0, bars.c.high <= 0, bars.c.low <= 0, bars.c.close <= 0
                ),
                "high_below_body": sa.or_(bars.c.high < bars.c.open, bars.c.high < bars.c.close),
                "low_above_body": sa.or_(bars.c.low > bars.c.open, bars.c.low > bars.c.close),
                "negative_volume": bars.c.volume < 0,
            },
            bars.c.symbol,
        )
    return with_range(context, found.result("daily bars"))


def minute_grid_problems(minutes: pd.DataFrame, session: calendar.Session) -> pd.DataFrame:
    """Per symbol: bars outside the session, bars off the minute grid, and minutes missing
    between the open and the symbol's latest bar."""
    ts = pd.to_datetime(minutes["ts"], utc=True)
    frame = pd.DataFrame(
        {
            "symbol": minutes["symbol"],
            "outside": (ts < session.open) | (ts >= session.close),
            "off_grid": (ts.dt.second != 0) | (ts.dt.microsecond != 0),
            "ts": ts,
        }
    )
    good = frame[~frame["outside"] & ~frame["off_grid"]]
    expected = ((good.groupby("symbol")["ts"].max() - session.open).dt.total_seconds() // 60) + 1
    per_symbol = frame.groupby("symbol").agg(
        outside=("outside", "sum"), off_grid=("off_grid", "sum")
    )
    per_symbol["missing"] = (expected - good.groupby("symbol").size()).reindex(per_symbol.index)
    per_symbol["missing"] = per_symbol["missing"].fillna(0).astype(int)
    per_symbol["expected"] = expected.reindex(per_symbol.index).fillna(0).astype(int)
    return per_symbol.reset_index()


def _session_minutes(warehouse: Warehouse, session: calendar.Session) -> Iterator[pd.DataFrame]:
    """The 1m bars stamped on the session's calendar day (ET), to catch strays around it, of
    every symbol a run of the partition recorded, `SYMBOLS_PER_READ` symbols at a time.

    By symbol, the primary key's order: a seek per symbol rather than a scan of every stored
    minute of every day, every five minutes. In batches: the S&P 500's day is ~200k bars, ~80 MB
    as one frame, which was most of an intraday run's peak memory.
    """
    bars = tables.price_bars
    key = session.day.isoformat()
    symbols = sorted(
        latest_outcomes(warehouse, intraday_bars.key.to_user_string(), key, key).symbol
    )
    day_start = datetime.combine(session.day, time(0), tzinfo=calendar.NY)
    on_day = sa.and_(
        bars.c.timeframe == "1m",
        bars.c.ts >= warehouse.instant(day_start),
        bars.c.ts < warehouse.instant(day_start + timedelta(days=1)),
    )
    for first in range(0, len(symbols), SYMBOLS_PER_READ):
        batch = symbols[first : first + SYMBOLS_PER_READ]
        yield warehouse.read_frame(
            sa.select(bars.c.symbol, bars.c.ts).where(bars.c.symbol.in_(batch), on_day)
        )


@dg.asset_check(
    asset=intraday_bars,
    name="minute_bars_on_session_grid",
    partitions_def=intraday_bars.partitions_def,
    description="1-minute bars lie inside the session (early closes respected), on whole "
    f"minutes, with no more than {MAX_MISSING_FRACTION:.0%} (at least {MAX_MISSING_MINUTES}) "
    "of the minutes between the open and each symbol's latest bar missing.",
)
def minute_bars_on_session_grid(
    context: dg.AssetCheckExecutionContext, warehouse: WarehouseResource
) -> dg.AssetCheckResult:
    problems = []
    with warehouse.open() as wh:
        for session in check_sessions(context):
            problems += [
                minute_grid_problems(minutes, session).assign(session=session.day.isoformat())
                for minutes in _session_minutes(wh, session)
            ]
    grid = pd.concat(problems, ignore_index=True) if problems else EMPTY_GRID
    allowed = (grid["expected"] * MAX_MISSING_FRACTION).clip(lower=MAX_MISSING_MINUTES)
    gappy = grid[grid["missing"] > allowed]
    misplaced = grid[(grid["outside"] > 0) | (grid["off_grid"] > 0)]
    passed = gappy.empty and misplaced.empty
    result = dg.AssetCheckResult(
        passed=passed,
        # Bars where no bar can be are wrong data; gaps are a provider's thin minute.
        severity=dg.AssetCheckSeverity.ERROR if len(misplaced) else dg.AssetCheckSeverity.WARN,
        description=(
            f"{len(grid)} symbol-sessions on the minute grid"
            if passed
            else f"{len(misplaced)} symbol-sessions with bars outside the session or off the "
            f"minute grid; {len(gappy)} with too many missing minutes"
        ),
        metadata={
            "symbol_sessions": len(grid),
            "bars_outside_session": int(grid["outside"].sum()),
            "bars_off_grid": int(grid["off_grid"].sum()),
            "missing_minutes": int(grid["missing"].sum()),
            "gappy_symbols": dg.MetadataValue.json(sorted(gappy["symbol"].unique())[:50]),
            "misplaced_symbols": dg.MetadataValue.json(sorted(misplaced["symbol"].unique())[:50]),
            "failing_sessions": dg.MetadataValue.json(
                sorted(set(gappy["session"]) | set(misplaced["session"]))
            ),
        },
    )
    return with_range(context, result)


price_checks = [
    coverage_check(daily_bars),
    coverage_check(intraday_bars),
    daily_bars_consistent,
    minute_bars_on_session_grid,
]
