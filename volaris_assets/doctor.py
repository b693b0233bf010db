"""`volaris-doctor` (or `python -m volaris_assets.doctor`): is this deployment able to run?

Checks what an operator would otherwise find out from a failed run: every setting is valid (the
check a run makes before it starts), the warehouse is reachable
and has the contract's tables, every configured provider has its settings (and Schwab's 7-day
refresh token is not about to lapse) and answers at its base URL, the Discord webhook is
configured, and the Dagster instance loads with its daemon alive. It reads settings from the
environment, as the platform does, and changes nothing: the webhook is only posted to with
`--ping`, and a provider is only asked for its base URL, without credentials.

Every line names settings, never their values; the report also goes through `redaction` with
every secret registered, so a value quoted in an exception cannot get out either.
Exit status: 0 when nothing failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import math
import os
import shutil
import socket
import ssl
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa

from volaris_assets import redaction, settings
from volaris_assets.providers import registry, schwab
from volaris_assets.providers.budget import BudgetState
from volaris_assets.resources.market_data import SECRET_FIELDS, SETTING_FIELDS
from volaris_assets.settings import checks as setting_checks
from volaris_assets.warehouse.store import DEFAULT_SQLITE_PATH, normalize_url, redact_url
from volaris_assets.warehouse.tables import metadata

if TYPE_CHECKING:
    from dagster import DagsterInstance

# Every capability a provider list configures: chains, bars, and the IV history and profiles.
CAPABILITIES = registry.CAPABILITIES
DISCORD_HOSTS = frozenset({"discord.com", "discordapp.com", "canary.discord.com"})
# The daemon writes a heartbeat every few seconds; a minute of silence means it is not running.
HEARTBEAT_STALE = timedelta(seconds=60)
# Free space under a SQLite warehouse below which the doctor warns, and fails: one session of
# option snapshots for the S&P 500 is ~1.5 GB hot (benchmark 12: ~280 B a row x 518 symbols x
# ~390 contracts x 26 snapshots), and a full disk fails every write.
DISK_WARN_MB, DISK_FAIL_MB = 2048, 64
_MB = 2**20
# A provider that has not answered its base URL in this long is as good as unreachable for a run.
PROBE_TIMEOUT_S = 3.0
# The runs whose recorded peak memory the report looks at.
RECENT_RUNS = 20


class Status(enum.StrEnum):
    OK = "OK"
    WARN = "WARN"
    FAIL = "FAIL"


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    area: str
    status: Status
    detail: str


Env = Mapping[str, str]


def check_settings(env: Env) -> list[Check]:
    """The same validation a run does before it starts, one line per invalid variable."""
    found = settings.problems(env)
    ignored = [Check("settings", Status.WARN, line) for line in settings.unknown(env)]
    if not found:
        valid = Check("settings", Status.OK, f"all {len(settings.fields())} variables valid")
        return [valid, *ignored]
    return [*(Check("settings", Status.FAIL, problem.line()) for problem in found), *ignored]


def check_warehouse(env: Env) -> list[Check]:
    """Connect (without creating anything) and compare the tables with the contract."""
    if any(problem.variable == "DATABASE_URL" for problem in settings.problems(env)):
        return [Check("warehouse", Status.FAIL, "not checked: DATABASE_URL is invalid (above)")]
    raw_url = env.get("DATABASE_URL") or ""
    url = normalize_url(raw_url)
    shown = redact_url(raw_url)
    parsed = sa.make_url(url)
    redaction.register(parsed.password)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        where = parsed.database or str(DEFAULT_SQLITE_PATH)
        return [
            Check(
                "warehouse",
                Status.FAIL,
                f"no SQLite warehouse at {where}: set DATABASE_URL, or materialize once "
                "(`make materialize`) to create it",
            )
        ]
    disk = (
        [_disk_check(Path(parsed.database or ""))] if parsed.get_backend_name() == "sqlite" else []
    )
    # A firewalled host would otherwise hold the report for the OS's TCP timeout (minutes).
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            present = set(inspector.get_table_names())
            missing = sorted(set(metadata.tables) - present)
            drifted = {
                name: sorted(
                    {c.name for c in table.columns}
                    - {c["name"] for c in inspector.get_columns(name)}
                )
                for name, table in metadata.tables.items()
                if name in present
            }
            last_result = (
                conn.execute(sa.text("SELECT max(recorded_at) FROM sync_stock_results")).scalar()
                if "sync_stock_results" in present
                else None
            )
            unwritable = (
                _unwritable_tables(conn, sorted(present & set(metadata.tables)))
                if parsed.get_backend_name() == "postgresql"
                else []
            )
    except sa.exc.SQLAlchemyError as error:
        reason = str(error.orig if getattr(error, "orig", None) else error).strip().splitlines()
        return [
            Check(
                "warehouse", Status.FAIL, f"{shown}: cannot connect ({reason[0] if reason else ''})"
            ),
            *disk,
        ]
    finally:
        engine.dispose()
    if unwritable:
        user = parsed.username or "this user"
        return [
            Check(
                "warehouse",
                Status.FAIL,
                f"{shown}: {user} cannot write {', '.join(unwritable)} (INSERT, UPDATE and "
                f"DELETE needed; GRANT them on the tables to {user})",
            )
        ]
    return [_schema_check(shown, missing, drifted, last_result), *disk]


# The contract tables of `:tables` the connected user lacks a write privilege on: read-only
# catalog functions, so the doctor changes nothing while it asks.
_UNWRITABLE = sa.text(
    "SELECT t FROM unnest(CAST(:tables AS text[])) AS t WHERE NOT ("
    "has_table_privilege(quote_ident(t), 'INSERT') AND "
    "has_table_privilege(quote_ident(t), 'UPDATE') AND "
    "has_table_privilege(quote_ident(t), 'DELETE')) ORDER BY t"
)


def _unwritable_tables(conn: sa.Connection, tables: list[str]) -> list[str]:
    """Tables a run would fail to write with a permission error, found before any run does
    (a user granted SELECT only read as OK)."""
    if not tables:
        return []
    return [row[0] for row in conn.execute(_UNWRITABLE, {"tables": tables})]


def _disk_check(database: Path) -> Check:
    """The free space where the SQLite warehouse (and its WAL) grows: a run that filled the
    disk fails with 'disk full', but the warehouse itself still opens and answers."""
    usage = shutil.disk_usage(database.parent)
    free_mb = usage.free / _MB
    detail = (
        f"{free_mb:,.0f} MB free of {usage.total / _MB:,.0f} MB under {database.parent} "
        f"({usage.used / usage.total:.0%} used)"
    )
    if free_mb < DISK_FAIL_MB:
        return Check("warehouse disk", Status.FAIL, f"{detail}: writes fail; free space first")
    if free_mb < DISK_WARN_MB:
        return Check("warehouse disk", Status.WARN, f"{detail}: less than a session's snapshots")
    return Check("warehouse disk", Status.OK, detail)


def _schema_check(
    shown: str, missing: list[str], drifted: dict[str, list[str]], last_result: object
) -> Check:
    if missing:
        return Check(
            "warehouse",
            Status.FAIL,
            f"{shown}: missing contract tables {', '.join(missing)} (a materialization "
            "creates them)",
        )
    columns = [f"{table}.{column}" for table, names in drifted.items() for column in names]
    if columns:
        return Check("warehouse", Status.FAIL, f"{shown}: missing columns {', '.join(columns)}")
    last = f"last symbol result {last_result}" if last_result else "no run has written yet"
    return Check(
        "warehouse", Status.OK, f"{shown}: all {len(metadata.tables)} contract tables; {last}"
    )


def provider_settings(env: Env) -> dict[str, str]:
    """The provider settings present in `env`, keyed as provider modules expect them."""
    names = (*SECRET_FIELDS.values(), *SETTING_FIELDS.values())
    return {name: env[name] for name in names if env.get(name)}


def check_providers(env: Env, now: datetime) -> list[Check]:
    """One line per configured provider, naming the capabilities it is configured for."""
    settings = provider_settings(env)
    wanted: dict[str, list[str]] = {}
    for capability in CAPABILITIES:
        for name in registry.configured_providers(capability, env):
            wanted.setdefault(name, []).append(capability)
    return [
        _check_provider(name, capabilities, settings, now) for name, capabilities in wanted.items()
    ]


def _check_provider(
    name: str, capabilities: list[str], settings: Mapping[str, str], now: datetime
) -> Check:
    area = f"provider {name} ({', '.join(capabilities)})"
    if name == registry.SIMULATED:
        return Check(area, Status.WARN, "the simulated market: no real data is ingested")
    if name not in registry.PROVIDER_MODULES:
        known = ", ".join(registry.KNOWN_PROVIDERS)
        return Check(area, Status.FAIL, f"unknown provider (known: {known})")
    try:
        module = registry.load_module(name)
    except ImportError as error:
        return Check(area, Status.FAIL, f"module failed to import ({type(error).__name__})")
    unsupported = [c for c in capabilities if c not in module.CAPABILITIES]
    if unsupported:
        return Check(area, Status.FAIL, f"does not provide {', '.join(unsupported)} data")
    missing = registry.missing_settings(module, settings)
    if missing:
        return Check(area, Status.FAIL, f"missing settings: {', '.join(missing)}")
    if name == schwab.NAME:
        return _check_schwab_token(area, settings, now)
    required = ", ".join(module.REQUIRED_SETTINGS) or "none needed"
    return Check(area, Status.OK, f"settings present ({required})")


def check_reachability(env: Env) -> list[Check]:
    """Connect to every configured provider's base URL, all at once: a wrong `*_API_BASE`, a
    firewall or a provider outage shows here rather than as a run's failures. The request is
    a bare GET of the base URL (no credentials, nothing billed); any HTTP answer below 500
    means the provider is there."""
    names = sorted(
        {
            name
            for capability in CAPABILITIES
            for name in registry.configured_providers(capability, env)
            if name in registry.PROVIDER_MODULES
        }
    )
    targets = {}
    for name in names:
        try:
            module = registry.load_module(name)
        except ImportError:
            continue  # the provider's own line already says so
        targets[name] = env.get(f"{name.upper()}_API_BASE") or module.DEFAULT_BASE
    if not targets:
        return []
    outcomes = asyncio.run(_probe_all(targets))
    return [outcomes[name] for name in targets]


async def _probe_all(targets: Mapping[str, str]) -> dict[str, Check]:
    timeout = httpx.Timeout(PROBE_TIMEOUT_S)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
        checks = await asyncio.gather(*(_probe(client, n, u) for n, u in targets.items()))
    return dict(zip(targets, checks, strict=True))


async def _probe(client: httpx.AsyncClient, name: str, url: str) -> Check:
    area = f"reach {name}"
    shown = _shown_url(url)
    started = time.perf_counter()
    try:
        response = await client.get(url)
    except httpx.UnsupportedProtocol:
        return Check(area, Status.FAIL, f"{shown}: not an http(s) URL")
    except httpx.TimeoutException:
        return Check(
            area, Status.FAIL, f"{shown}: unreachable (no answer in {PROBE_TIMEOUT_S:g} s)"
        )
    except httpx.TransportError as error:
        return Check(area, Status.FAIL, f"{shown}: {_transport_failure(error)}")
    elapsed_ms = (time.perf_counter() - started) * 1000
    status = response.status_code
    if status >= 500:
        return Check(
            area, Status.WARN, f"{shown}: HTTP {status} in {elapsed_ms:.0f} ms (server error)"
        )
    return Check(area, Status.OK, f"{shown}: reachable, HTTP {status} in {elapsed_ms:.0f} ms")


def _transport_failure(error: httpx.TransportError) -> str:
    """The category of a failed connection, from the OS error under httpx's (never its text,
    which may quote the URL)."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "refused (nothing listens on that port)"
        if isinstance(cause, socket.gaierror):
            return "unreachable (the host name does not resolve)"
        if isinstance(cause, ssl.SSLError):
            return f"TLS failed ({type(cause).__name__})"
        if isinstance(cause, OSError) and cause.errno is not None:
            return f"unreachable ({os.strerror(cause.errno).lower()})"
        cause = cause.__cause__ or cause.__context__
    return f"unreachable ({type(error).__name__})"


def _shown_url(url: str) -> str:
    """scheme://host[:port]/path: no user info or query, which could carry a credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _check_schwab_token(area: str, settings: Mapping[str, str], now: datetime) -> Check:
    """Schwab's refresh token lapses 7 days after a human logged in; warn 2 days ahead."""
    try:
        status = _schwab_token_status(settings, now)
    except ValueError:
        return Check(area, Status.FAIL, "SCHWAB_REFRESH_TOKEN_ISSUED_AT is not an ISO-8601 time")
    left = status.time_left(now)
    if left is None:
        return Check(
            area,
            Status.WARN,
            "refresh token age unknown: set SCHWAB_REFRESH_TOKEN_ISSUED_AT at each login",
        )
    if left <= timedelta(0):
        return Check(
            area, Status.FAIL, f"refresh token expired {_span(-left)} ago: log in to Schwab again"
        )
    if status.relogin_soon:
        return Check(
            area, Status.WARN, f"refresh token expires in {_span(left)}: log in to Schwab soon"
        )
    return Check(area, Status.OK, f"settings present; refresh token expires in {_span(left)}")


def _schwab_token_status(settings: Mapping[str, str], now: datetime) -> schwab.RefreshTokenStatus:
    client = schwab.create(settings)
    try:
        return client.refresh_token_status(now)
    finally:
        asyncio.run(client.aclose())


def check_budgets(env: Env) -> list[Check]:
    """Each configured provider's shared request budget as its store sees it now: the pace,
    what every process reserved in the last minute, any 429 pause in force, and which store
    answers (a fallback means the shared one is unreachable)."""
    from volaris_assets.providers.budget import BudgetConfig, open_budget
    from volaris_assets.providers.rate_limit import parse_rate_limits
    from volaris_assets.providers.resilience import budget_limits

    wanted = {
        name
        for capability in CAPABILITIES
        for name in registry.configured_providers(capability, env)
        if name != registry.SIMULATED
    }
    if not wanted:
        return []
    try:
        limits = budget_limits(parse_rate_limits(env.get("VOLARIS_RATE_LIMITS")))
        budget = open_budget(limits, BudgetConfig.from_env(env))
    except ValueError as error:
        return [Check("budget", Status.FAIL, str(error))]
    try:
        states = [state for state in budget.snapshot() if state.provider in wanted]
    finally:
        budget.close()
    return [_budget_check(state) for state in states]


def _budget_check(state: BudgetState) -> Check:
    paused = f", paused until {state.paused_until:%H:%M:%S} UTC (429)" if state.paused_until else ""
    store = f"{state.backend} {state.where}"
    if not state.shared:
        store += f" (FALLBACK: {state.passed_over or 'the shared store is down'})"
    other = ""
    if state.disagrees and state.last_pace is not None:
        other = (
            f"; last reserved at {_pace(state.last_pace.rate, state.last_pace.burst)} by a "
            "process with other limits: give every process that shares this budget the same "
            "VOLARIS_RATE_LIMITS, VOLARIS_BUDGET_HOSTS and VOLARIS_BUDGET_PROCESSES"
        )
    healthy = state.shared and not state.paused_until and not state.disagrees
    return Check(
        f"budget {state.provider}",
        Status.OK if healthy else Status.WARN,
        f"{_pace(state.rate, state.burst)}; {state.reserved_last_60s} reserved "
        f"in the last minute, queue {state.wait_s:.1f} s{paused}; store {store}{other}",
    )


def _pace(rate: float, burst: float) -> str:
    return "unlimited" if math.isinf(rate) else f"{rate * 60:.0f}/min burst {burst:g}"


def check_storage(env: Env) -> list[Check]:
    """Size per table and tier, bytes per row, a year ahead; a bad cold file is named (FAIL).
    Nothing is reported when the warehouse cannot be read: its own line says why."""
    from volaris_assets.history import storage  # deferred: DuckDB is only needed here
    from volaris_assets.history.cold import ColdStore

    try:
        current = settings.load(env)
    except ValueError:
        return []  # the settings lines name the problem
    url = normalize_url(env.get("DATABASE_URL") or "")
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return []
    connect_args = {"connect_timeout": 5} if parsed.get_backend_name() == "postgresql" else {}
    engine = sa.create_engine(url, connect_args=connect_args)
    try:
        report = storage.measure(engine, ColdStore(current.history_url))
    except sa.exc.SQLAlchemyError:
        return []
    finally:
        engine.dispose()
    lines = storage.doctor_lines(report, current.option_chain_interval_min, current.hot_sessions)
    return [Check(area, Status(status), detail) for status, area, detail in lines]


def check_webhook(env: Env, *, ping: bool) -> list[Check]:
    """Configured or not, shaped like a Discord webhook or not; posts only with `ping`."""
    url = (env.get("DISCORD_WEBHOOK_URL") or "").strip()
    if not url:
        return [
            Check(
                "webhook",
                Status.WARN,
                "DISCORD_WEBHOOK_URL not set: notifications are logged and skipped",
            )
        ]
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    redaction.register(url, *segments[3:4])  # the token: /api/webhooks/ID/TOKEN
    try:
        setting_checks.webhook_url(url)  # the settings check's rule, so the two never disagree
    except ValueError as error:
        return [Check("webhook", Status.FAIL, f"DISCORD_WEBHOOK_URL is {error}")]
    host = parts.hostname or ""
    checks = [
        Check("webhook", Status.OK, "configured (discord.com)")
        if host in DISCORD_HOSTS and parts.scheme == "https"
        else Check("webhook", Status.WARN, f"configured, but not a Discord https host: {host}")
    ]
    if ping:
        checks.append(_ping(url))
    return checks


def _ping(url: str) -> Check:
    from volaris_assets.resources.notifier import DiscordNotifier  # deferred: imports Dagster

    sent = DiscordNotifier(webhook_url=url, max_retries=1).notify(
        "Volaris doctor",
        "Test message from `volaris-doctor --ping`: this webhook reaches the channel.",
        dedup_key=f"doctor-ping-{datetime.now(UTC).isoformat()}",
    )
    if sent:
        return Check("webhook ping", Status.OK, "test message delivered")
    return Check("webhook ping", Status.FAIL, "test message not delivered (see the warning above)")


def check_dagster(env: Env, now: datetime) -> list[Check]:
    """The instance in DAGSTER_HOME loads; which storage, queue and launcher; daemon alive."""
    home = env.get("DAGSTER_HOME")
    if not home:
        return [
            Check(
                "dagster",
                Status.WARN,
                "DAGSTER_HOME not set: CLI runs use a throwaway instance and nothing is kept",
            )
        ]
    if not Path(home).is_dir():
        return [Check("dagster", Status.FAIL, f"DAGSTER_HOME={home} does not exist")]
    import dagster as dg  # deferred: the other checks do not need Dagster

    try:
        instance = dg.DagsterInstance.from_config(home)
    except Exception as error:  # noqa: BLE001 - any load failure is the finding
        first = str(error).strip().splitlines()
        reason = first[0] if first else ""
        return [Check("dagster", Status.FAIL, f"instance in {home} fails to load: {reason}")]
    with instance:
        storage = type(instance.run_storage).__name__
        parts = (
            f"DAGSTER_HOME={home}; storage {storage}; "
            f"run coordinator {type(instance.run_coordinator).__name__}; "
            f"run launcher {type(instance.run_launcher).__name__}"
        )
        sqlite = "Sqlite" in storage
        checks = [
            Check(
                "dagster",
                Status.WARN if sqlite else Status.OK,
                parts
                + (
                    " (SQLite: one user only; see deploy/production/dagster.yaml)" if sqlite else ""
                ),
            )
        ]
        checks.append(_daemon_check(instance.get_daemon_heartbeats(), now))
        checks += _memory_checks(instance, home, _memory_threshold(env))
    return checks


def _memory_threshold(env: Env) -> int | None:
    """VOLARIS_MEMORY_WARN_MB, or None when the settings are invalid (reported above)."""
    try:
        return settings.load(env).memory_warn_mb
    except settings.SettingsError:
        return None


def _memory_checks(instance: DagsterInstance, home: str, threshold_mb: int | None) -> list[Check]:
    """The memory of this instance's daemon on this host (now and its peak), and the peak of
    recent runs as they recorded it (`peak_rss_mb` metadata; the memory warning tag)."""
    import dagster as dg

    from volaris_assets.ingest.memory import MEMORY_TAG, daemon_processes

    limit = f" (VOLARIS_MEMORY_WARN_MB={threshold_mb})" if threshold_mb else ""
    over = (lambda mb: mb > threshold_mb) if threshold_mb else (lambda mb: False)
    daemons = daemon_processes(home)
    if daemons:
        shown = "; ".join(
            f"pid {d.pid} {d.rss_mb:.0f} MB, peak {d.peak_mb:.0f} MB" for d in daemons
        )
        worst = max(d.peak_mb for d in daemons)
        daemon = Check("memory daemon", Status.WARN if over(worst) else Status.OK, shown + limit)
    else:
        daemon = Check(
            "memory daemon", Status.OK, f"no daemon process for DAGSTER_HOME={home} on this host"
        )
    peaks = []
    for run in instance.get_runs(limit=RECENT_RUNS):
        records = instance.get_records_for_run(
            run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        ).records
        figures = [
            float(record.asset_materialization.metadata["peak_rss_mb"].value)
            for record in records
            if "peak_rss_mb" in record.asset_materialization.metadata
        ]
        if MEMORY_TAG in run.tags:
            figures.append(float(run.tags[MEMORY_TAG]))
        if figures:
            peaks.append((max(figures), run))
    if not peaks:
        return [daemon, Check("memory runs", Status.OK, "no recent run recorded its peak memory")]
    mb, run = max(peaks, key=lambda peak: peak[0])
    warned = sum(MEMORY_TAG in r.tags for _, r in peaks)
    detail = (
        f"peak {mb:.0f} MB in run {run.run_id[:8]} ({run.job_name}) over the last "
        f"{len(peaks)} runs that recorded it{limit}"
        + (f"; {warned} run(s) passed the threshold" if warned else "")
    )
    status = Status.WARN if over(mb) or warned else Status.OK
    return [daemon, Check("memory runs", status, detail)]


def _daemon_check(heartbeats: Mapping[str, object], now: datetime) -> Check:
    if not heartbeats:
        return Check(
            "dagster daemon",
            Status.WARN,
            "no heartbeat ever: schedules, sensors and the run queue need `dagster-daemon run`",
        )
    newest = max(getattr(beat, "timestamp", 0.0) for beat in heartbeats.values())
    age = now - datetime.fromtimestamp(newest, UTC)
    if age > HEARTBEAT_STALE:
        return Check(
            "dagster daemon",
            Status.WARN,
            f"last heartbeat {_span(age)} ago: the daemon is not running",
        )
    return Check(
        "dagster daemon",
        Status.OK,
        f"alive ({len(heartbeats)} daemons, last heartbeat {_span(age)} ago)",
    )


def _span(delta: timedelta) -> str:
    """A short human duration: '3 d 4 h', '2 h 5 min', '40 s'."""
    seconds = int(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def run_checks(env: Env, *, ping: bool, now: datetime | None = None) -> list[Check]:
    moment = now or datetime.now(UTC)
    redaction.register(*(env.get(name) for name in SECRET_FIELDS.values()))
    sections: Sequence[tuple[str, Callable[[], list[Check]]]] = (
        ("settings", lambda: check_settings(env)),
        ("warehouse", lambda: check_warehouse(env)),
        ("providers", lambda: check_providers(env, moment)),
        ("reachability", lambda: check_reachability(env)),
        ("budget", lambda: check_budgets(env)),
        ("storage", lambda: check_storage(env)),
        ("webhook", lambda: check_webhook(env, ping=ping)),
        ("dagster", lambda: check_dagster(env, moment)),
    )
    return [check for area, section in sections for check in _guarded(area, section)]


def _guarded(area: str, section: Callable[[], list[Check]]) -> list[Check]:
    """A section's checks, or one failure line when the section itself breaks (a value the
    settings line above already reports, a driver that is not installed): the rest of the
    report is what the user came for."""
    try:
        return section()
    except Exception as error:  # noqa: BLE001 - one section must not take the report down
        return [Check(area, Status.FAIL, f"could not be checked ({type(error).__name__})")]


def render(checks: Sequence[Check]) -> str:
    width = max((len(c.area) for c in checks), default=0)
    lines = [f"  {c.status.value:<5} {c.area:<{width}}  {c.detail}" for c in checks]
    counts = {s: sum(c.status is s for c in checks) for s in Status}
    lines.append(
        f"{counts[Status.OK]} ok, {counts[Status.WARN]} warning(s), "
        f"{counts[Status.FAIL]} failure(s)"
    )
    return redaction.redact("\n".join(["volaris doctor", *lines]))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="volaris-doctor", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--ping", action="store_true", help="post a test message to the Discord webhook"
    )
    args = parser.parse_args(argv)
    checks = run_checks(os.environ, ping=args.ping)
    print(render(checks))
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
