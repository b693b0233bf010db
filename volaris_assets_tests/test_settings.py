"""Settings are validated once, up front: every bad value of a documented variable is named with
its accepted form, no secret is printed, and `.env.example` and the README cannot drift from the
model. The CLI cases run the real `python -m volaris_assets.materialize` in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from volaris_assets import settings
from volaris_assets.resources.definitions import resources
from volaris_assets.settings import envfile
from volaris_assets.settings.model import extra

ROOT = Path(__file__).resolve().parents[1]
CANARY = "settings-canary-secret-7731"


def accepted(name: str) -> str:
    return str(extra(settings.fields()[name], "accepted"))


# Each documented variable given garbage: (variable, value, words the reason must contain).
BAD_VALUES = [
    ("VOLARIS_CELERY_BROKER_URL", "redis://127.0.0.1:6379/0", "not an amqp:// URL"),
    ("VOLARIS_CELERY_BACKEND_URL", "amqp://127.0.0.1:5672", "not rpc:// or a redis:// URL"),
    ("VOLARIS_CONCURRENCY", "-3", "greater than or equal to 1"),
    ("VOLARIS_CONCURRENCY", "lots", "valid integer"),
    ("VOLARIS_CONCURRENCY", "100000", "less than or equal to 256"),
    ("VOLARIS_INTRADAY_PROVIDERS", ",,,", "names no provider"),
    ("VOLARIS_DAILY_PROVIDERS", "simulated,nosuchprovider", "unknown provider nosuchprovider"),
    ("VOLARIS_CHAIN_PROVIDERS", "tiingo", "does not provide chain data"),
    ("VOLARIS_CHAIN_PROVIDERS", "Yahoo, yahoo ,simulated", "yahoo named twice"),
    ("VOLARIS_HISTORY_PROVIDERS", "schwab", "does not provide history data"),
    ("VOLARIS_PROFILE_PROVIDERS", "simulated", "does not provide profile data"),
    ("VOLARIS_RETRY_BASE_S", "nan", "finite"),
    ("VOLARIS_RETRY_BASE_S", "0", "greater than 0"),
    ("VOLARIS_RATE_LIMITS", "garbage!!", "bad rate limit"),
    ("VOLARIS_RATE_LIMITS", "nosuch=1/1", "unknown provider nosuch"),
    ("VOLARIS_RATE_LIMITS", "polygon=0/1", "positive"),
    ("VOLARIS_MAX_RESPONSE_MB", "huge", ""),
    ("VOLARIS_MIN_SUCCESS_RATE", "2", "less than or equal to 1"),
    ("VOLARIS_MEMORY_WARN_MB", "10", "greater than or equal to 50"),
    ("VOLARIS_TRACEMALLOC_TOP", "all", "valid integer"),
    ("VOLARIS_DB_RECONNECT_S", "-1", "greater than or equal to 0"),
    ("VOLARIS_UNIVERSE", ";;;", "yields no valid symbol"),
    ("VOLARIS_UNIVERSE", "/nonexistent/universe.csv", "does not exist"),
    ("DATABASE_URL", "postgresq://user:pw@host/db", "unknown database scheme 'postgresq'"),
    ("DATABASE_URL", "user:pw@host/db", "not a URL"),
    ("DATABASE_URL", "postgresql://", "needs a host and a database"),
    ("SCHWAB_REFRESH_TOKEN_ISSUED_AT", "last-tuesday", "not an ISO-8601 time"),
    ("SCHWAB_REFRESH_TOKEN_ISSUED_AT", "2999-01-01T00:00:00", "in the future"),
    ("ALPACA_FEED", "nasdaq", "not an Alpaca feed"),
    ("DATABENTO_DATASET", "nasdaq", "dataset code"),
    ("ROBINHOOD_DEVICE_TOKEN", "my-laptop", "not a UUID"),
    ("ROBINHOOD_MFA_SECRET", "123456", "not base32"),
    ("DISCORD_WEBHOOK_URL", "https://discord.com/channels/1/2", "not a webhook URL"),
    ("VOLARIS_NOTIFY_DEDUP_DB", "/nonexistent/dir/notify.db", "does not exist"),
    ("DAGSTER_HOME", "relative/home", "not an absolute path"),
    ("DAGSTER_HOME", "/nonexistent/dagster_home", "not an existing directory"),
    ("VOLARIS_TEST_DATABASE_URL", "mysql://x@y/z", "unknown database scheme"),
    ("REDIS_URL", "localhost:6379", "not a redis:// URL"),
    ("VOLARIS_BUDGET_FILE", "/nonexistent/dir/budget.db", "does not exist"),
    ("VOLARIS_BUDGET_HOSTS", "0", "greater than or equal to 1"),
    ("VOLARIS_BUDGET_PROCESSES", "many", "valid integer"),
    ("VOLARIS_CHAIN_MODE", "both", "'fallback' or 'pool'"),
    ("VOLARIS_INTRADAY_MODE", "round-robin", "'fallback' or 'pool'"),
    ("VOLARIS_DAILY_MODE", "pooled", "'fallback' or 'pool'"),
    ("VOLARIS_UNIVERSE_EXTRA", "PLTR,BR K!", "not tickers"),
    ("REALTIME_JOB_INTERVAL_SECONDS", "30", "below the 60 s minimum"),
    ("FIVE_MINUTE_JOB_INTERVAL_SECONDS", "90", "divides the hour"),
    ("OPTION_CHAIN_JOB_INTERVAL_MINUTES", "5", "multiple of 15 minutes"),
    ("IV_METRICS_JOB_INTERVAL_MINUTES", "45", "does not divide the hour"),
    ("EOD_SYNC_CRON_HOUR", "12", "greater than or equal to 16"),
    ("EOD_SYNC_CRON_MINUTE", "75", "less than or equal to 59"),
    ("VOLARIS_FIRST_SESSION", "1985-01-02", "greater than or equal to 1990-01-02"),
    ("HISTORICAL_BACKFILL_CRON_HOUR", "24", "less than or equal to 23"),
    ("HISTORICAL_BACKFILL_LOOKBACK_DAYS", "0", "greater than or equal to 1"),
    ("VOLARIS_IV_EOD_TIME", "15:00", "before 16:00"),
    ("VOLARIS_WHEEL_SCAN_TIME", "quarter to five", "not a time of day"),
    ("VOLARIS_UNIVERSE_CRON", "every monday", "cron"),
    ("VOLARIS_HISTORY_URL", "ftp://host/path", "is not one of"),
    ("VOLARIS_HOT_SESSIONS", "0", "greater than or equal to 1"),
    ("VOLARIS_HISTORY_TIME", "15:30", "before 16:00"),
    ("VOLARIS_RETAIN_RESULTS_DAYS", "0", "greater than or equal to 1"),
    ("VOLARIS_RETAIN_REJECTIONS_DAYS", "ten", "valid integer"),
    ("VOLARIS_RETAIN_INTRADAY_DAYS", "4000", "less than or equal to 3650"),
    ("DATABASE_URL", "postgresql://u:pass@word@h/db", "write an '@' in the password as %40"),
    ("DATABASE_URL", "sqlite://tmp/w.db", "a SQLite URL has no host"),
    ("DATABASE_URL", "sqlite:///:memory:", "each step would write a warehouse of its own"),
    ("DATABASE_URL", "sqlite:///file:w?mode=memory&uri=true", "an in-memory SQLite database"),
    ("DATABASE_URL", "postgresql://u@127.0.0.1:99999/db", "port 99999 is not a TCP port"),
    ("DATABASE_URL", "postgresql://u:pw@[::1/x", "not a parseable database URL"),
    ("REDIS_URL", "redis://127.0.0.1:abc/0", "its port is not a number"),
    ("REDIS_URL", "redis://127.0.0.1:6379/zero", "its database (the path) is not a number"),
    ("VOLARIS_BUDGET_FILE", "/tmp/" + "x" * 300 + ".db", "cannot be a file here"),
    ("VOLARIS_RATE_LIMITS", "polygon=1/1e308", "between one request a day"),
    ("VOLARIS_RATE_LIMITS", "polygon=100/1,polygon=5/60", "polygon has a budget already"),
    ("VOLARIS_MAX_RESPONSE_MB", "1e308", "at most 4096"),
] + [
    (name, value, "http(s) URL")
    for name in settings.fields()
    if accepted(name) == "an http(s) URL"
    for value in ("api.example.com", "ftp://example.com")
]


def only(variable: str, value: str) -> dict[str, str]:
    return {variable: value}


@pytest.mark.parametrize(("variable", "value", "reason"), BAD_VALUES)
def test_each_bad_value_is_one_problem_naming_the_variable(variable, value, reason):
    found = settings.problems(only(variable, value))
    assert [p.variable for p in found] == [variable]
    assert reason in found[0].reason
    line = found[0].line()
    assert line.startswith(f"{variable}=")
    assert "expected" in line and f"e.g. {variable}=" in line


def test_every_documented_variable_has_a_bad_value_case():
    tested = {variable for variable, _, _ in BAD_VALUES}
    credentials = {name for name in settings.fields() if "your account" in accepted(name)}
    assert set(settings.fields()) - credentials - tested == set()


def test_defaults_are_valid_and_blank_means_default():
    config = settings.load({"VOLARIS_CONCURRENCY": "  ", "DATABASE_URL": ""})
    assert config.concurrency == 16
    assert config.providers("chain") == "simulated"
    assert config.database_url is None


def test_provider_lists_are_normalised():
    config = settings.load({"VOLARIS_CHAIN_PROVIDERS": " Yahoo, ,simulated"})
    assert config.providers("chain") == "yahoo,simulated"


def test_a_provider_without_its_keys_is_an_error_not_a_skip():
    found = settings.problems({"VOLARIS_CHAIN_PROVIDERS": "schwab", "SCHWAB_APP_KEY": CANARY})
    assert len(found) == 1
    assert "SCHWAB_SECRET_KEY, SCHWAB_REFRESH_TOKEN, which are unset" in found[0].reason
    assert CANARY not in settings.render(found)


def test_secrets_never_printed_but_urls_stay_readable():
    env = {
        "DATABASE_URL": f"postgresq://volaris:{CANARY}@db.example:5432/volaris",
        "DISCORD_WEBHOOK_URL": f"https://discord.com/api/channels/{CANARY}",
        "VOLARIS_TEST_DATABASE_URL": f"mysql://u:{CANARY}@h/d",
    }
    report = settings.render(settings.problems(env))
    assert CANARY not in report
    assert "postgresq://volaris:***@db.example:5432/volaris" in report


@pytest.mark.parametrize(
    ("variable", "template"),
    [
        ("DATABASE_URL", "postgresql//u:{secret}@127.0.0.1:5432/x"),
        ("DATABASE_URL", "postgresql:/u:{secret}@127.0.0.1/x"),
        ("DATABASE_URL", "postgresql://u:{secret}@extra@127.0.0.1:1/x"),
        ("DATABASE_URL", "mysql://u@127.0.0.1/x?password={secret}"),
        ("DISCORD_WEBHOOK_URL", "https://discord.com/api/webhook/1/{secret}"),
        ("DISCORD_WEBHOOK_URL", "https://discord.com/webhooks/1/{secret}"),
        ("VOLARIS_CELERY_BROKER_URL", "amqp:/u:{secret}@h/v"),
    ],
)
def test_a_malformed_secret_is_not_printed_either(variable, template):
    """Masking that needs a well-formed URL to find the password shows it in full exactly
    when the user mistyped the URL. A fresh secret per case: the redaction registry is the
    process's, and a secret an earlier case registered would be masked for the wrong reason."""
    secret = f"canary{uuid.uuid4().hex}"
    report = settings.render(settings.problems({variable: template.format(secret=secret)}))
    assert variable in report
    assert secret not in report


def test_a_secret_url_without_a_path_is_shown_whole():
    """Nothing to hide in it, and its port cut short ("6379" as "637/***") sent the user
    looking for the wrong typo."""
    report = settings.render(settings.problems({"REDIS_URL": "http://127.0.0.1:6379"}))
    assert "REDIS_URL='http://127.0.0.1:6379': not a redis:// URL" in report


def test_an_upper_case_database_scheme_opens_like_a_lower_case_one():
    from volaris_assets.warehouse.urls import normalize_url, redact_url

    assert settings.problems({"DATABASE_URL": "PostgreSQL://u:pw@h/db"}) == []
    assert normalize_url("PostgreSQL://u:pw@h/db") == "postgresql+psycopg2://u:pw@h/db"
    assert normalize_url("SQLITE:///w.db") == "sqlite:///w.db"
    shown = redact_url(f"postgresql://u@h/db?sslmode=require&password={CANARY}")
    assert CANARY not in shown and "sslmode=require" in shown


def test_many_problems_fit_in_twenty_lines():
    env = {variable: value for variable, value, _ in BAD_VALUES}
    report = settings.render(settings.problems(env))
    assert len(report.splitlines()) <= 20
    assert "more" in report.splitlines()[-2]


def test_resources_refuse_invalid_settings(monkeypatch):
    """The code location binds resources at load, so a bad variable stops the load (the UI
    shows the report) instead of failing a run later."""
    monkeypatch.setenv("VOLARIS_CONCURRENCY", "lots")
    with pytest.raises(settings.SettingsError, match="VOLARIS_CONCURRENCY='lots'"):
        resources()


def test_resources_carry_validated_values(monkeypatch):
    monkeypatch.setenv("VOLARIS_CONCURRENCY", "4")
    monkeypatch.setenv("VOLARIS_MIN_SUCCESS_RATE", "0.9")
    bound = resources()
    assert bound["chain_data"].concurrency == 4
    assert bound["chain_data"].min_success_rate == 0.9


def test_env_example_is_generated_from_the_model():
    committed = (ROOT / ".env.example").read_text()
    assert committed == envfile.render(), (
        "regenerate: python -m volaris_assets.settings.envfile > .env.example"
    )


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text()
    missing = [name for name in settings.fields() if f"`{name}`" not in readme]
    assert missing == []


def _materialize(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in settings.fields()}
    return subprocess.run(
        [sys.executable, "-m", "volaris_assets.materialize"],
        env={**clean, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("VOLARIS_CONCURRENCY", "lots"),
        ("DATABASE_URL", f"postgresq://u:{CANARY}@h/db"),
        ("SCHWAB_REFRESH_TOKEN_ISSUED_AT", "last-tuesday"),
    ],
)
def test_materialize_stops_before_running(variable, value, tmp_path):
    done = _materialize({variable: value}, tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2
    assert variable in "\n".join(done.stderr.splitlines()[:3])
    assert len(done.stderr.splitlines()) <= 20
    assert CANARY not in output
    assert not (tmp_path / "data").exists(), "nothing may be created before settings are valid"


def test_the_code_location_refuses_to_load_with_the_report(tmp_path):
    """What the UI shows: Dagster's own validation of the code location fails on the report."""
    clean = {k: v for k, v in os.environ.items() if k not in settings.fields()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dagster",
            "definitions",
            "validate",
            "-m",
            "volaris_assets.definitions",
        ],
        env={**clean, "VOLARIS_DAILY_PROVIDERS": "simulated,nosuchprovider"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode != 0
    assert "VOLARIS_DAILY_PROVIDERS='simulated,nosuchprovider': unknown provider" in (
        done.stdout + done.stderr
    )


def test_a_url_without_a_password_registers_no_secret():
    """The user name of a password-less URL is not a secret: masking it would garble every
    later message that names the database."""
    from volaris_assets import redaction

    url = "postgresql://settings_user_only@127.0.0.1:5432/test"
    settings.load({"DATABASE_URL": url})
    assert redaction.redact(f"database {url}") == f"database {url}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (
            "bad DISCORD_WEBHOOK_URL 'https://discord.com/api/webhooks/1234/tok-EN_9': reason",
            "bad DISCORD_WEBHOOK_URL 'https://discord.com/api/webhooks/***': reason",
        ),
        (
            "posted to https://discord.com/api/webhooks/1/a.b.",
            "posted to https://discord.com/api/webhooks/***.",
        ),
        ("(https://discordapp.com/api/webhooks/9/x)", "(https://discord.com/api/webhooks/***)"),
    ],
)
def test_a_webhook_url_is_masked_up_to_its_end_not_the_text_after_it(text, shown):
    from volaris_assets import redaction

    assert redaction.redact(text) == shown


def test_a_misspelled_variable_is_named_with_the_setting_it_resembles(caplog):
    env = {
        "VOLARIS_CHAIN_PROVIDER": "polygon",
        "VOLARIS_CONCURENCY": "4",
        "VOLARIS_NO_SUCH_THING": "1",
        "VOLARIS_BENCH_CWD": "/tmp",  # the benchmarks' own, not a setting
        "VOLARIS_CONCURRENCY": "8",
    }
    assert settings.unknown(env) == [
        "VOLARIS_CHAIN_PROVIDER is not a setting and is ignored; "
        "did you mean VOLARIS_CHAIN_PROVIDERS?",
        "VOLARIS_CONCURENCY is not a setting and is ignored; did you mean VOLARIS_CONCURRENCY?",
        "VOLARIS_NO_SUCH_THING is not a setting and is ignored",
    ]
    with caplog.at_level("WARNING", logger="volaris_assets.settings"):
        assert settings.load(env).concurrency == 8  # a warning, not an error
    assert "did you mean VOLARIS_CHAIN_PROVIDERS?" in caplog.text


def test_a_near_miss_of_an_unprefixed_setting_is_named_and_others_are_left_alone():
    env = {
        "DATABSE_URL": "postgresql://u@h/db",
        "POLYGON_APIKEY": "k",
        "PATH": "/usr/bin",
        "REDIS_HOST": "cache",  # another tool's variable, nothing like REDIS_URL
    }
    assert settings.unknown(env) == [
        "DATABSE_URL is not a setting and is ignored; did you mean DATABASE_URL?",
        "POLYGON_APIKEY is not a setting and is ignored; did you mean POLYGON_API_KEY?",
    ]
