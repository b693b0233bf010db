"""Retry failed symbols: after a run of a per-symbol asset ends (materialized, or failed below its
success threshold) with transient failures, run the same job and partition again for only those
symbols, with the fallback provider first.

State lives in the cursor: the last materialization seen per asset, the last run failure seen,
and the retries waiting for their delay. A retry run carries `volaris/retry_of` (the first run
of the lineage) and `volaris/retry_attempt`; its own end comes back through this sensor, which
is how attempt 2 follows attempt 1. After `max_attempts` the remaining symbols are reported to
Discord and left alone. Each attempt waits longer than the last (default 1, 5, 15 minutes), and
rotates the provider chain one further, so attempt 1 starts with the second provider.
"""

import copy
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import dagster as dg
import sqlalchemy as sa

from volaris_assets.dagster_internals import UnresolvedAssetJobDefinition, get_current_timestamp
from volaris_assets.ingest.asset_support import RETRY_OF_TAG
from volaris_assets.ingest.fanout import RETRYABLE_OUTCOMES
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.notifier import DiscordNotifier, Severity
from volaris_assets.resources.warehouse import WarehouseResource
from volaris_assets.warehouse import tables
from volaris_assets.warehouse.store import Warehouse

RETRY_ATTEMPT_TAG = "volaris/retry_attempt"
PARTITION_TAGS = (
    "dagster/partition",
    "dagster/asset_partition_range_start",
    "dagster/asset_partition_range_end",
)
DEFAULT_DELAYS_S = (60.0, 300.0, 900.0)
MAX_ATTEMPTS = 3
INTERVAL_S = 30
LOOKBACK_S = 3600.0


@dataclass(frozen=True)
class RetryTarget:
    """A per-symbol asset, the job that materializes it, and its market-data resource key."""

    asset: dg.AssetsDefinition
    job: UnresolvedAssetJobDefinition
    market: str

    @property
    def name(self) -> str:
        return self.asset.key.to_user_string()


@dataclass(frozen=True)
class PendingRetry:
    failed_run: str
    origin: str
    attempt: int
    asset: str
    symbols: list[str]
    due: float


@dataclass
class RetryState:
    """The cursor: storage ids read up to (materializations by asset, run failures), and the
    retries waiting for their delay. A cursor from before run failures were read has none."""

    after: dict[str, int]
    failures_after: int | None
    pending: list[PendingRetry]

    @classmethod
    def load(cls, cursor: str | None) -> "RetryState":
        raw = json.loads(cursor) if cursor else {}
        return cls(
            after=raw.get("after", {}),
            failures_after=raw.get("failures_after"),
            pending=[PendingRetry(**p) for p in raw.get("pending", [])],
        )

    def dump(self) -> str:
        return json.dumps(
            {
                "after": self.after,
                "failures_after": self.failures_after,
                "pending": [asdict(p) for p in self.pending],
            }
        )


def retryable_failures(warehouse: Warehouse, run_id: str, asset: str) -> dict[str, str]:
    """Symbol -> error category of the run's transient failures for `asset`."""
    results = tables.sync_stock_results
    query = sa.select(results.c.symbol, results.c.error_type).where(
        results.c.run_id == run_id,
        results.c.asset == asset,
        results.c.status != "ok",
        results.c.error_type.in_(sorted(RETRYABLE_OUTCOMES)),
    )
    with warehouse.engine.connect() as conn:
        return {symbol: category for symbol, category in conn.execute(query)}


def written_since(
    warehouse: Warehouse, failed_run: str, asset: str, symbols: Sequence[str]
) -> set[str]:
    """The `symbols` a later run wrote for `asset` and the failed run's partition: a retry of
    them would put older data (its provider the fallback) over a newer fetch of the window."""
    results = tables.sync_stock_results
    failed = (
        sa.select(results.c.partition, sa.func.max(results.c.recorded_at).label("at"))
        .where(results.c.run_id == failed_run, results.c.asset == asset)
        .group_by(results.c.partition)
        .subquery()
    )
    query = sa.select(results.c.symbol).where(
        results.c.asset == asset,
        results.c.partition == failed.c.partition,
        results.c.recorded_at > failed.c.at,
        results.c.status == "ok",
        results.c.symbol.in_(list(symbols)),
    )
    with warehouse.engine.connect() as conn:
        return {symbol for (symbol,) in conn.execute(query)}


def new_materialization_runs(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, after: int | None, since: float
) -> tuple[list[str], int | None]:
    """Runs that materialized `asset_key` after storage id `after` (or, on a first tick, after
    the timestamp `since`), in order; and the newest storage id seen."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=asset_key,
            after_storage_id=after,
            after_timestamp=None if after is not None else since,
        ),
        limit=1000,
        ascending=True,
    ).records
    runs = list(dict.fromkeys(record.run_id for record in records))
    newest = records[-1].storage_id if records else after
    return runs, newest


def new_failed_runs(
    instance: dg.DagsterInstance, after: int | None, since: float
) -> tuple[list[dg.DagsterRun], int | None]:
    """Runs that failed after storage id `after` (or, on a first tick, after `since`); and the
    newest storage id seen. A run below its success threshold fails without materializing, and
    its symbols are the ones that need a retry most."""
    records = instance.fetch_run_status_changes(
        dg.RunStatusChangeRecordsFilter(
            event_type=dg.DagsterEventType.RUN_FAILURE,
            after_storage_id=after,
            after_timestamp=None if after is not None else since,
        ),
        limit=1000,
        ascending=True,
    ).records
    runs = [run for record in records if (run := instance.get_run_by_id(record.run_id))]
    newest = records[-1].storage_id if records else after
    return runs, newest


def planned(run: dg.DagsterRun, target: RetryTarget) -> bool:
    """Whether `run` was to materialize the target's asset: a run of its job, or of any job
    with the asset in its selection (`dg.materialize`, a backfill)."""
    return run.job_name == target.job.name or target.asset.key in (run.asset_selection or ())


def start_with(market: MarketDataResource, attempt: int) -> str | None:
    """Attempt n starts with the provider n places down the chain (the fallback first)."""
    order = market.provider_order()
    return order[attempt % len(order)] if len(order) > 1 else None


def retry_request(
    run: dg.DagsterRun, target: RetryTarget, retry: PendingRetry, provider: str | None
) -> dg.RunRequest:
    """The failed run again: same job, partition and config, for the failed symbols only."""
    run_config = copy.deepcopy(dict(run.run_config or {}))
    op = run_config.setdefault("ops", {}).setdefault(target.asset.op.name, {})
    config = op.setdefault("config", {})
    config["symbols"] = retry.symbols
    config["start_with_provider"] = provider
    tags = {key: run.tags[key] for key in PARTITION_TAGS[1:] if key in run.tags}
    tags |= {RETRY_OF_TAG: retry.origin, RETRY_ATTEMPT_TAG: str(retry.attempt)}
    return dg.RunRequest(
        run_key=f"retry:{retry.origin}:{retry.asset}:{retry.attempt}",
        job_name=target.job.name,
        run_config=run_config,
        partition_key=run.tags.get(PARTITION_TAGS[0]),
        tags=tags,
    )


def make_retry_failed_symbols_sensor(
    targets: Sequence[RetryTarget],
    *,
    name: str = "retry_failed_symbols_sensor",
    delays_s: Sequence[float] = DEFAULT_DELAYS_S,
    max_attempts: int = MAX_ATTEMPTS,
) -> dg.SensorDefinition:
    """`delays_s[n]` is the wait before attempt n+1; it should grow."""
    if len(delays_s) < max_attempts:
        raise ValueError("need one delay per attempt")
    by_name = {target.name: target for target in targets}

    @dg.sensor(
        name=name,
        jobs=[target.job for target in targets],
        minimum_interval_seconds=INTERVAL_S,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Re-runs the symbols that failed transiently, on the fallback provider, up "
        f"to {max_attempts} times with growing delays ({', '.join(f'{d:g}' for d in delays_s)} s).",
    )
    def _sensor(
        context: dg.SensorEvaluationContext,
        warehouse: WarehouseResource,
        notifier: DiscordNotifier,
        chain_data: MarketDataResource,
        intraday_data: MarketDataResource,
        daily_data: MarketDataResource,
    ) -> dg.SensorResult:
        markets = {
            "chain_data": chain_data,
            "intraday_data": intraday_data,
            "daily_data": daily_data,
        }
        state = RetryState.load(context.cursor)
        now = get_current_timestamp()
        new_runs = []
        for target in targets:
            runs, newest = new_materialization_runs(
                context.instance, target.asset.key, state.after.get(target.name), now - LOOKBACK_S
            )
            if newest is not None:
                state.after[target.name] = newest
            new_runs += [(target, run_id) for run_id in runs]
        failed, state.failures_after = new_failed_runs(
            context.instance, state.failures_after, now - LOOKBACK_S
        )
        new_runs += [
            (target, run.run_id) for run in failed for target in targets if planned(run, target)
        ]
        if new_runs:
            with warehouse.open() as wh:
                for target, run_id in new_runs:
                    _plan(context, wh, notifier, state, target, run_id, now)
        due = [p for p in state.pending if p.due <= now]
        state.pending = [p for p in state.pending if p.due > now]
        requests = []
        if due:
            with warehouse.open() as wh:
                for retry in due:
                    if (request := _request_due(context, wh, markets, retry)) is not None:
                        requests.append(request)
        return dg.SensorResult(run_requests=requests, cursor=state.dump())

    def _request_due(
        context: dg.SensorEvaluationContext,
        warehouse: Warehouse,
        markets: dict[str, MarketDataResource],
        retry: PendingRetry,
    ) -> dg.RunRequest | None:
        """The retry of the symbols no later run has written since the failure, if any."""
        run = context.instance.get_run_by_id(retry.failed_run)
        if run is None:
            return None
        written = written_since(warehouse, retry.failed_run, retry.asset, retry.symbols)
        if written:
            context.log.info(
                "%s run %s: %s written by a later run since; not retried",
                retry.asset,
                retry.failed_run[:8],
                ", ".join(sorted(written)),
            )
        symbols = [symbol for symbol in retry.symbols if symbol not in written]
        if not symbols:
            return None
        target = by_name[retry.asset]
        provider = start_with(markets[target.market], retry.attempt)
        return retry_request(run, target, replace(retry, symbols=symbols), provider)

    def _plan(
        context: dg.SensorEvaluationContext,
        warehouse: Warehouse,
        notifier: DiscordNotifier,
        state: RetryState,
        target: RetryTarget,
        run_id: str,
        now: float,
    ) -> None:
        """Queue a retry for a run that left transient failures, or report giving up."""
        if any(p.failed_run == run_id and p.asset == target.name for p in state.pending):
            return
        run = context.instance.get_run_by_id(run_id)
        if run is None:
            return
        failures = retryable_failures(warehouse, run_id, target.name)
        if not failures:
            return
        attempt = int(run.tags.get(RETRY_ATTEMPT_TAG, "0"))
        origin = run.tags.get(RETRY_OF_TAG, run_id)
        if attempt >= max_attempts:
            _report_gave_up(notifier, target, run, origin, failures, attempt)
            return
        context.log.info(
            "%s run %s: %d transient failure(s), retry %d in %gs",
            target.name,
            run_id[:8],
            len(failures),
            attempt + 1,
            delays_s[attempt],
        )
        state.pending.append(
            PendingRetry(
                failed_run=run_id,
                origin=origin,
                attempt=attempt + 1,
                asset=target.name,
                symbols=sorted(failures),
                due=now + delays_s[attempt],
            )
        )

    return _sensor


def _report_gave_up(
    notifier: DiscordNotifier,
    target: RetryTarget,
    run: dg.DagsterRun,
    origin: str,
    failures: dict[str, str],
    attempts: int,
) -> None:
    partition = next((run.tags[k] for k in PARTITION_TAGS if k in run.tags), "-")
    symbols = sorted(failures)
    notifier.notify(
        f"Retries exhausted: {target.name} [{partition}]",
        f"{len(symbols)} symbol(s) still failing after {attempts} retries: "
        + ", ".join(symbols[:40])
        + ("…" if len(symbols) > 40 else ""),
        severity=Severity.WARNING,
        fields={
            "Categories": ", ".join(sorted(set(failures.values()))),
            "First run": origin[:8],
            "Last run": run.run_id[:8],
        },
        dedup_key=f"retry-exhausted:{origin}:{target.name}",
    )
