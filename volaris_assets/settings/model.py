"""The settings model: every documented environment variable, its type, range and example.

One declaration per variable is the single source for validation, for the problem report a user
sees, for `.env.example` (generated from it) and for the README's table (checked against it), so
none of them can drift from the code. Values are the variables' raw text: an unset or blank
variable takes the default, as it always has.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.fields import FieldInfo

from volaris_assets import calendar, scheduling
from volaris_assets.cluster import celery_config
from volaris_assets.history import locations
from volaris_assets.settings import checks
from volaris_assets.universe import constituents


def setting(
    env: str,
    group: str,
    doc: str,
    *,
    accepted: str,
    example: str,
    default: Any = None,
    secret: bool | str = False,
    **bounds: Any,
) -> Any:
    """A field read from the environment variable `env`.

    `accepted` is the form in words and `example` a value that passes: both go into the error a
    user sees, so that the message alone is enough to fix the variable. `secret`: True for a
    key, token or URL whose credentials are masked; "url" for a path-or-URL setting, whose
    value is masked only as a URL (a plain directory holds no credentials, and masking it hid
    which file an error was about).
    """
    return Field(
        default,
        alias=env,
        description=doc,
        examples=[example],
        json_schema_extra={"group": group, "accepted": accepted, "secret": secret},
        **bounds,
    )


def fields() -> dict[str, FieldInfo]:
    """The model's fields keyed by environment variable name, in declaration order."""
    return {info.alias or name: info for name, info in Settings.model_fields.items()}


def extra(info: FieldInfo, key: str) -> object:
    """A field's `group`, `accepted` or `secret` annotation."""
    annotations = info.json_schema_extra
    return annotations.get(key) if isinstance(annotations, dict) else None


def checked(check: Callable[..., Any], *args: Any) -> BeforeValidator:
    """Run `check` on the variable's text (blank variables never get here: they are unset)."""
    return BeforeValidator(lambda value: check(value, *args) if isinstance(value, str) else value)


def key(env: str, group: str, doc: str, example: str) -> Any:
    """A credential: any non-blank text, reported redacted."""
    return setting(env, group, doc, accepted="the value from your account", example=example,
                   secret=True)  # fmt: skip


def base_url(env: str, group: str, example: str, doc: str = "Base URL.") -> Any:
    return setting(env, group, doc, accepted="an http(s) URL", example=example)


def mode_setting(env: str, what: str) -> Any:
    return setting(
        env,
        "Provider budget",
        f"How the providers of {what} share the work: fallback (the next only when one "
        "fails) or pool (every provider at once, in proportion to its budget, falling back "
        "on failure).",
        accepted="fallback or pool",
        example="pool",
        default="fallback",
    )


Url = Annotated[str | None, checked(checks.http_url)]
Mode = Annotated[Literal["fallback", "pool"], checked(checks.lowered)]
Text = str | None

_PROVIDER_LIST = "comma-separated provider names, first is primary"


class Settings(BaseModel):
    """What the environment configures. Secrets are here only to be validated and reported
    redacted; resources still bind them with `EnvVar` so that they never enter run config."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    # Warehouse
    database_url: Annotated[Text, checked(checks.database_url)] = setting(
        "DATABASE_URL",
        "Warehouse",
        "Warehouse URL. Unset: the SQLite file data/volaris.db. postgresql:// and postgres:// "
        "are opened with psycopg2.",
        accepted="postgresql://user:password@host:5432/dbname or sqlite:///path/file.db",
        example="postgresql://volaris:secret@127.0.0.1:5432/volaris",
        secret=True,
    )
    db_reconnect_s: float = setting(
        "VOLARIS_DB_RECONNECT_S",
        "Warehouse",
        "How long a symbol's write is retried on a fresh connection when the database drops "
        "it (a restart, a managed database resuming) before the run gives up.",
        accepted="seconds from 0 to 600",
        example="30",
        default=30.0,
        ge=0,
        le=600,
        allow_inf_nan=False,
    )
    # Universe
    universe: Annotated[Text, checked(checks.universe)] = setting(
        "VOLARIS_UNIVERSE",
        "Universe",
        "Replaces both universes (index lists and ETF list): a CSV path (a column headed "
        "symbol or ticker, or a bare list) or comma-separated symbols.",
        accepted="a CSV file with a symbol or ticker column, or comma-separated tickers",
        example="AAPL,MSFT,BRK.B",
    )
    universe_extra: Annotated[Text, checked(constituents.extra_symbols)] = setting(
        "VOLARIS_UNIVERSE_EXTRA",
        "Universe",
        "Symbols added to both universes (bars, chains, IV metrics, wheel scan) on top of the "
        "defaults or VOLARIS_UNIVERSE. Index options (SPX, XSP, NDX, RUT, VIX, DJX) join bars, "
        "chains and IV only, where the provider serves them (Schwab, the simulated market).",
        accepted="comma-separated tickers or a CSV file with a symbol column, every entry valid",
        example="PLTR,ARKK,SPX",
    )
    # Providers
    chain_providers: Annotated[str, checked(checks.provider_list, "chain")] = setting(
        "VOLARIS_CHAIN_PROVIDERS",
        "Providers",
        "Option-chain providers in fallback order.",
        accepted=_PROVIDER_LIST + " (chain: simulated, schwab, polygon, yahoo, robinhood)",
        example="schwab,polygon,yahoo",
        default="simulated",
    )
    intraday_providers: Annotated[str, checked(checks.provider_list, "intraday")] = setting(
        "VOLARIS_INTRADAY_PROVIDERS",
        "Providers",
        "1-minute bar and quote providers in fallback order (quotes come from those with a "
        "batch endpoint: simulated, schwab, polygon, alpaca).",
        accepted=_PROVIDER_LIST,
        example="schwab,alpaca,polygon",
        default="simulated",
    )
    daily_providers: Annotated[str, checked(checks.provider_list, "daily")] = setting(
        "VOLARIS_DAILY_PROVIDERS",
        "Providers",
        "Daily bar providers in fallback order.",
        accepted=_PROVIDER_LIST,
        example="tiingo,polygon,yahoo",
        default="simulated",
    )
    history_providers: Annotated[str, checked(checks.provider_list, "history")] = setting(
        "VOLARIS_HISTORY_PROVIDERS",
        "Providers",
        "Past sessions' option chains for the IV history bootstrap, in fallback order "
        "(every request is billed by Databento; Polygon costs ten requests a symbol-session).",
        accepted=_PROVIDER_LIST + " (history: simulated, databento, polygon)",
        example="databento,polygon",
        default="simulated",
    )
    profile_providers: Annotated[Text, checked(checks.provider_list, "profile")] = setting(
        "VOLARIS_PROFILE_PROVIDERS",
        "Providers",
        "Company-profile providers, in fallback order, for the sector and industry of each "
        "stock of the S&P 500 universe (asset company_profiles, run with the weekly universe "
        "refresh). Unset: the sectors the shipped index lists give, matched by keyword.",
        accepted=_PROVIDER_LIST + " (profile: finnhub)",
        example="finnhub",
    )
    # Shared provider budget
    redis_url: Annotated[Text, checked(checks.redis_url)] = setting(
        "REDIS_URL",
        "Provider budget",
        "Redis holding every provider's request budget, shared by every process on every host. "
        "Unset: the PostgreSQL warehouse holds it, else a SQLite file on this host.",
        accepted="redis://[user:password@]host:6379[/db] or rediss://",
        example="redis://127.0.0.1:6379/0",
        secret=True,
    )
    budget_file: Annotated[Text, checked(checks.file_path)] = setting(
        "VOLARIS_BUDGET_FILE",
        "Provider budget",
        "This host's SQLite budget file: the budget without Redis or PostgreSQL, and the first "
        "fallback when they are unreachable. Unset: budget.db beside the SQLite warehouse, else "
        "in DAGSTER_HOME, else under data/.",
        accepted="a file path in an existing directory",
        example="/var/lib/volaris/budget.db",
    )
    budget_hosts: int = setting(
        "VOLARIS_BUDGET_HOSTS",
        "Provider budget",
        "Hosts that ingest from one provider account at once: each paces at 1/N of the limit "
        "on its own file while the shared store is unreachable.",
        accepted="a whole number from 1 to 64",
        example="1",
        default=1,
        ge=1,
        le=64,
    )
    budget_processes: int = setting(
        "VOLARIS_BUDGET_PROCESSES",
        "Provider budget",
        "Ingesting processes per host: each paces at 1/(hosts x N) of the limit when even the "
        "host's file is unusable.",
        accepted="a whole number from 1 to 256",
        example="6",
        default=6,
        ge=1,
        le=256,
    )
    chain_mode: Mode = mode_setting("VOLARIS_CHAIN_MODE", "option chains")
    intraday_mode: Mode = mode_setting("VOLARIS_INTRADAY_MODE", "1-minute bars")
    daily_mode: Mode = mode_setting("VOLARIS_DAILY_MODE", "daily bars")
    # Cluster (deploy/cluster/)
    celery_broker_url: Annotated[Text, checked(celery_config.broker_url_form)] = setting(
        "VOLARIS_CELERY_BROKER_URL",
        "Cluster",
        "The RabbitMQ broker that carries steps to the Celery workers; required by the cluster "
        "layout (volaris_assets.cluster), on the run hosts and every worker alike.",
        accepted="amqp://user:password@host:5672/vhost",
        example="amqp://volaris:secret@rabbitmq.internal:5672/volaris",
        secret=True,
    )
    celery_backend_url: Annotated[Text, checked(celery_config.backend_url_form)] = setting(
        "VOLARIS_CELERY_BACKEND_URL",
        "Cluster",
        "Where workers put a step's result for its run process. Unset: rpc:// (back through "
        "the broker to the run that submitted it).",
        accepted="rpc:// or redis://[user:password@]host:6379/db",
        example="rpc://",
        secret=True,
    )
    # Tuning
    concurrency: int = setting(
        "VOLARIS_CONCURRENCY",
        "Tuning",
        "Symbols fetched at once within a run.",
        accepted="a whole number from 1 to 256",
        example="16",
        default=16,
        ge=1,
        le=256,
    )
    retry_base_s: float = setting(
        "VOLARIS_RETRY_BASE_S",
        "Tuning",
        "First retry wait in seconds, then x2 for 5 attempts (0.1, 0.2, 0.4, 0.8 s), each plus "
        "up to as much jitter.",
        accepted="seconds, more than 0 and at most 60",
        example="0.1",
        default=0.1,
        gt=0,
        le=60,
        allow_inf_nan=False,
    )
    rate_limits: Annotated[str, checked(checks.rate_limits)] = setting(
        "VOLARIS_RATE_LIMITS",
        "Tuning",
        "Budgets for your plans, replacing the documented per-provider defaults.",
        accepted="provider=requests/seconds[:burst], comma-separated",
        example="polygon=100/1,schwab=120/60",
        default="",
    )
    max_response_mb: Annotated[str, checked(checks.response_caps)] = setting(
        "VOLARIS_MAX_RESPONSE_MB",
        "Tuning",
        "Largest provider response read; a larger one is recorded as bad_data instead of "
        "exhausting memory. MB for every provider and/or provider=MB.",
        accepted="MB and/or provider=MB, comma-separated",
        example="32,databento=128",
        default="",
    )
    min_success_rate: float = setting(
        "VOLARIS_MIN_SUCCESS_RATE",
        "Tuning",
        "A per-symbol run that writes fewer than this share of its symbols fails, so the "
        "partition is not marked materialized and the failure is notified and retried.",
        accepted="a fraction from 0 to 1",
        example="0.5",
        default=0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
    )
    # Schedules
    realtime_interval_s: Annotated[int, checked(scheduling.interval_seconds)] = setting(
        "REALTIME_JOB_INTERVAL_SECONDS",
        "Schedules",
        "How often the real-time jobs (latest quotes) run in market hours.",
        accepted="seconds: 60 or whole minutes that divide the hour (60, 120, 300...)",
        example="60",
        default=60,
    )
    five_minute_interval_s: Annotated[int, checked(scheduling.interval_seconds)] = setting(
        "FIVE_MINUTE_JOB_INTERVAL_SECONDS",
        "Schedules",
        "How often 1-minute bars are refreshed in market hours.",
        accepted="seconds: 60 or whole minutes that divide the hour (60, 120, 300...)",
        example="300",
        default=300,
    )
    option_chain_interval_min: Annotated[
        int, checked(scheduling.interval_minutes, calendar.SNAPSHOT_MINUTES)
    ] = setting(
        "OPTION_CHAIN_JOB_INTERVAL_MINUTES",
        "Schedules",
        "How often option chains are snapshotted in regular hours (whole 15-minute windows).",
        accepted="15, 30 or 60",
        example="15",
        default=15,
    )
    iv_metrics_interval_min: Annotated[
        int, checked(scheduling.interval_minutes, calendar.SNAPSHOT_MINUTES)
    ] = setting(
        "IV_METRICS_JOB_INTERVAL_MINUTES",
        "Schedules",
        "How often intraday IV metrics are recomputed from the session's latest chain "
        "snapshot (10 minutes into each interval, once that snapshot is stored).",
        accepted="15, 30 or 60",
        example="30",
        default=30,
    )
    eod_sync_hour: int = setting(
        "EOD_SYNC_CRON_HOUR",
        "Schedules",
        "Hour (ET) of the after-close daily-bar sync, with EOD_SYNC_CRON_MINUTE.",
        accepted="a whole number from 16 to 23",
        example="17",
        default=17,
        ge=16,
        le=23,
    )
    eod_sync_minute: int = setting(
        "EOD_SYNC_CRON_MINUTE",
        "Schedules",
        "Minute of the after-close daily-bar sync.",
        accepted="a whole number from 0 to 59",
        example="15",
        default=15,
        ge=0,
        le=59,
    )
    iv_eod_time: Annotated[time, checked(scheduling.time_of_day)] = setting(
        "VOLARIS_IV_EOD_TIME",
        "Schedules",
        "When (ET) the end-of-day IV metrics are computed from the session's last snapshot: "
        "the values IV rank and percentile history is built from.",
        accepted="HH:MM from 16:00 to 23:59",
        example="16:30",
        default="16:30",
        validate_default=True,
    )
    wheel_scan_time: Annotated[time, checked(scheduling.time_of_day)] = setting(
        "VOLARIS_WHEEL_SCAN_TIME",
        "Schedules",
        "When (ET) the wheel scan runs over the closing chains.",
        accepted="HH:MM from 16:00 to 23:59",
        example="16:45",
        default="16:45",
        validate_default=True,
    )
    universe_cron: Annotated[str, checked(scheduling.cron)] = setting(
        "VOLARIS_UNIVERSE_CRON",
        "Schedules",
        "When (ET) the universes are refreshed.",
        accepted="a five-field cron expression",
        example="0 6 * * 1",
        default="0 6 * * 1",
    )
    # History
    first_session: date = setting(
        "VOLARIS_FIRST_SESSION",
        "Storage tiers",
        "First NYSE session of the session partitions (bars, IV metrics, scan): how far back a "
        "backfill reaches through Dagster. A date that is not a session moves to the next one.",
        accepted=f"a date YYYY-MM-DD from {calendar.FIRST_SESSION} to {calendar.CALENDAR_END}",
        example="2000-01-03",
        default=calendar.DEFAULT_FIRST_PARTITION,
        ge=calendar.FIRST_SESSION,
        le=calendar.CALENDAR_END,
    )
    backfill_hour: int = setting(
        "HISTORICAL_BACKFILL_CRON_HOUR",
        "Storage tiers",
        "Hour (UTC) of the nightly gap-fill, which re-runs the missing or failed session "
        "partitions of the last HISTORICAL_BACKFILL_LOOKBACK_DAYS sessions.",
        accepted="a whole number from 0 to 23",
        example="3",
        default=3,
        ge=0,
        le=23,
    )
    backfill_lookback_sessions: int = setting(
        "HISTORICAL_BACKFILL_LOOKBACK_DAYS",
        "Storage tiers",
        "How many of the latest closed sessions the nightly gap-fill checks (sessions, not "
        "calendar days).",
        accepted="a whole number from 1 to 756",
        example="30",
        default=30,
        ge=1,
        le=756,
    )
    # Storage tiers
    history_url: Annotated[Text, checked(locations.history_url)] = setting(
        "VOLARIS_HISTORY_URL",
        "Storage tiers",
        "Where compacted option snapshots go (Parquet, one file per session): a directory, or "
        "an object-store URL opened through fsspec (s3fs, gcsfs or adlfs installed) with the "
        "store's usual credentials. Unset: "
        "data/history beside the SQLite warehouse.",
        accepted="a directory path, or s3://bucket/prefix (also gs://, abfs://)",
        example="s3://volaris-history/prod",
        secret="url",
    )
    hot_sessions: int = setting(
        "VOLARIS_HOT_SESSIONS",
        "Storage tiers",
        "Sessions of option snapshots kept in the database; older ones are compacted to the "
        "history files (about 1.6 GB a session in PostgreSQL at the full universe).",
        accepted="a whole number from 1 to 20",
        example="1",
        default=1,
        ge=1,
        le=20,
    )
    history_time: Annotated[time, checked(scheduling.time_of_day)] = setting(
        "VOLARIS_HISTORY_TIME",
        "Storage tiers",
        "When (ET) the session that leaves the hot window is compacted, and the operational "
        "tables' retention applied: after the end-of-day jobs that read the session's snapshots.",
        accepted="HH:MM from 16:00 to 23:59",
        example="18:00",
        default="18:00",
        validate_default=True,
    )
    retain_results_days: int = setting(
        "VOLARIS_RETAIN_RESULTS_DAYS",
        "Storage tiers",
        "Days of per-symbol run results (sync_stock_results) kept.",
        accepted="a whole number of days from 1 to 3650",
        example="30",
        default=30,
        ge=1,
        le=3650,
    )
    retain_rejections_days: int = setting(
        "VOLARIS_RETAIN_REJECTIONS_DAYS",
        "Storage tiers",
        "Days of rejected-row records (row_rejections) kept.",
        accepted="a whole number of days from 1 to 3650",
        example="30",
        default=30,
        ge=1,
        le=3650,
    )
    retain_intraday_days: int = setting(
        "VOLARIS_RETAIN_INTRADAY_DAYS",
        "Storage tiers",
        "Days of 1- and 5-minute bars kept (daily bars are kept).",
        accepted="a whole number of days from 1 to 3650",
        example="30",
        default=30,
        ge=1,
        le=3650,
    )
    # Provider accounts
    schwab_app_key: Text = key("SCHWAB_APP_KEY", "Schwab", "Trader API app key.", "app-key")
    schwab_secret_key: Text = key("SCHWAB_SECRET_KEY", "Schwab", "App secret.", "app-secret")
    schwab_refresh_token: Text = key(
        "SCHWAB_REFRESH_TOKEN",
        "Schwab",
        "OAuth refresh token from the browser login; it lapses after 7 days.",
        "refresh-token",
    )
    schwab_refresh_token_issued_at: Annotated[datetime | None, checked(checks.issued_at)] = setting(
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT",
        "Schwab",
        "When the refresh token was issued; a warning goes out 2 days before it lapses.",
        accepted="an ISO-8601 time, not in the future",
        example="2026-03-09T14:00:00+00:00",
    )
    schwab_api_base: Url = base_url("SCHWAB_API_BASE", "Schwab", "https://api.schwabapi.com")
    polygon_api_key: Text = key("POLYGON_API_KEY", "Polygon", "Polygon.io / Massive key.", "key")
    polygon_api_base: Url = base_url(
        "POLYGON_API_BASE", "Polygon", "https://api.polygon.io", "Base URL (or api.massive.com)."
    )
    tiingo_api_key: Text = key("TIINGO_API_KEY", "Tiingo", "Tiingo API token.", "token")
    tiingo_api_base: Url = base_url("TIINGO_API_BASE", "Tiingo", "https://api.tiingo.com")
    alpaca_api_key: Text = key("ALPACA_API_KEY", "Alpaca", "Market Data key id.", "key-id")
    alpaca_api_secret: Text = key("ALPACA_API_SECRET", "Alpaca", "Secret key.", "secret")
    alpaca_api_base: Url = base_url("ALPACA_API_BASE", "Alpaca", "https://data.alpaca.markets")
    alpaca_feed: Annotated[Text, checked(checks.alpaca_feed)] = setting(
        "ALPACA_FEED",
        "Alpaca",
        "Bar feed (default iex; the free plan has iex only).",
        accepted="one of " + ", ".join(checks.ALPACA_FEEDS),
        example="iex",
    )
    finnhub_api_key: Text = key("FINNHUB_API_KEY", "Finnhub", "Finnhub API key.", "key")
    finnhub_api_base: Url = base_url("FINNHUB_API_BASE", "Finnhub", "https://finnhub.io/api/v1")
    databento_api_key: Text = key(
        "DATABENTO_API_KEY", "Databento", "Databento key (every request is billed).", "db-key"
    )
    databento_api_base: Url = base_url(
        "DATABENTO_API_BASE", "Databento", "https://hist.databento.com"
    )
    databento_dataset: Annotated[Text, checked(checks.databento_dataset)] = setting(
        "DATABENTO_DATASET",
        "Databento",
        "Dataset for bars (default XNAS.ITCH).",
        accepted="a dataset code, VENUE.FEED",
        example="XNAS.ITCH",
    )
    yahoo_api_base: Url = base_url(
        "YAHOO_API_BASE", "Yahoo", "https://query1.finance.yahoo.com", "Base URL (no key)."
    )
    yahoo_cookie_url: Url = base_url(
        "YAHOO_COOKIE_URL", "Yahoo", "https://fc.yahoo.com", "Where the session cookie comes from."
    )
    robinhood_username: Text = key(
        "ROBINHOOD_USERNAME",
        "Robinhood",
        "Login e-mail of a personal Robinhood account (unofficial API, chains only, at your "
        "own risk).",
        "me@example.com",
    )
    robinhood_password: Text = key("ROBINHOOD_PASSWORD", "Robinhood", "Login password.", "password")
    robinhood_device_token: Annotated[Text, checked(checks.device_token)] = setting(
        "ROBINHOOD_DEVICE_TOKEN",
        "Robinhood",
        "The device token (a UUID) of a device the account approved by hand, e.g. the "
        "device_token robin_stocks saves in ~/.tokens/robinhood.pickle; a run cannot approve one.",
        accepted="a UUID",
        example="5bd3c6a4-7e1f-4c52-9d0e-3f6a2b8c1d47",
        secret=True,
    )
    robinhood_mfa_secret: Annotated[Text, checked(checks.mfa_secret)] = setting(
        "ROBINHOOD_MFA_SECRET",
        "Robinhood",
        "The authenticator app's secret, for the TOTP code of each login. Unset: an account "
        "without app-based MFA.",
        accepted="the base32 secret shown when you set up the authenticator app",
        example="JBSWY3DPEHPK3PXP",
        secret=True,
    )
    robinhood_api_base: Url = base_url(
        "ROBINHOOD_API_BASE", "Robinhood", "https://api.robinhood.com"
    )
    # Memory
    memory_warn_mb: int = setting(
        "VOLARIS_MEMORY_WARN_MB",
        "Memory",
        "A run whose resident memory passes this warns once, in its log and on Discord (the "
        "system we replace warned at 400 MB on a 512 MB box).",
        accepted="MB, a whole number from 50 to 1000000",
        example="400",
        default=400,
        ge=50,
        le=1_000_000,
    )
    tracemalloc_top: int = setting(
        "VOLARIS_TRACEMALLOC_TOP",
        "Memory",
        "Opt-in: trace Python allocations in each ingestion run and record the top N source "
        "lines by size as metadata (tracing slows a run and adds memory). 0: off.",
        accepted="a whole number from 0 to 100",
        example="15",
        default=0,
        ge=0,
        le=100,
    )
    # Notifications and Dagster
    discord_webhook_url: Annotated[Text, checked(checks.webhook_url)] = setting(
        "DISCORD_WEBHOOK_URL",
        "Notifications",
        "Discord webhook (a secret). Unset: notifications are logged and skipped.",
        accepted="a Discord webhook URL, https://discord.com/api/webhooks/<id>/<token>",
        example="https://discord.com/api/webhooks/<id>/<token>",
        secret=True,
    )
    notify_dedup_db: Annotated[Text, checked(checks.file_path)] = setting(
        "VOLARIS_NOTIFY_DEDUP_DB",
        "Notifications",
        "SQLite file that deduplicates alerts across sensor ticks (set it in production). "
        "Unset: in memory.",
        accepted="a file path in an existing directory",
        example="/var/lib/volaris/notify.db",
    )
    dagster_ui_url: Url = base_url(
        "DAGSTER_UI_URL",
        "Notifications",
        "http://127.0.0.1:3000",
        "Base URL of the Dagster UI, for links to runs in notifications.",
    )
    dagster_home: Annotated[Text, checked(checks.existing_directory)] = setting(
        "DAGSTER_HOME",
        "Dagster",
        "Dagster instance directory (the make targets use .dagster_home/ and copy "
        "dagster.yaml there). Unset: CLI runs use a throwaway instance.",
        accepted="an absolute path to an existing directory",
        example="/srv/volaris/dagster_home",
    )
    test_database_url: Annotated[Text, checked(checks.database_url)] = setting(
        "VOLARIS_TEST_DATABASE_URL",
        "Tests",
        "The PostgreSQL the test suite uses (default postgresql://postgres@127.0.0.1:5432/test); "
        "tests fail, not skip, without it when CI is set.",
        accepted="postgresql://user@host:5432/dbname",
        example="postgresql://postgres@127.0.0.1:5432/test",
        secret=True,
    )

    def providers(self, capability: str) -> str:
        """The validated provider order of `capability` ("schwab,yahoo"); "" for none (the
        profile capability is optional)."""
        return getattr(self, f"{capability}_providers") or ""

    def mode(self, capability: str) -> str:
        return getattr(self, f"{capability}_mode")

    def simulated_capabilities(self) -> list[str]:
        """The capabilities whose primary provider is the simulated market."""
        return [
            capability
            for capability in ("chain", "intraday", "daily")
            if self.providers(capability).split(",")[0].strip().lower() == "simulated"
        ]
