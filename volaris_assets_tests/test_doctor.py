"""`volaris-doctor`: a healthy deployment passes, each broken part is named, nothing secret is
printed, and the webhook is only posted to with --ping. Real PostgreSQL, a real Dagster
instance, a loopback webhook, providers reached over loopback (the sandbox, a closed port)."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._daemon.types import DaemonHeartbeat

from volaris_assets import doctor
from volaris_assets.providers.budget import BudgetConfig, open_budget
from volaris_assets.providers.rate_limit import parse_rate_limits
from volaris_assets.providers.resilience import budget_limits
from volaris_assets.sandbox.server import Sandbox
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.disks import tmpfs
from volaris_assets_tests.webhook_receiver import WebhookReceiver

NOW = datetime(2026, 3, 11, 15, 0, tzinfo=UTC)
SECRETS = {
    "SCHWAB_APP_KEY": "doctor-canary-app-key-0001",
    "SCHWAB_SECRET_KEY": "doctor-canary-secret-0002",
    "SCHWAB_REFRESH_TOKEN": "doctor-canary-refresh-0003",
    "POLYGON_API_KEY": "doctor-canary-polygon-0004",
}
DB_PASSWORD = "doctor-canary-dbpass-0005"


@pytest.fixture
def warehouse_url(pg_warehouse_url) -> str:
    """The test server's database with the contract's tables, reached with a password (which
    trust auth ignores, so it can be a canary)."""
    url = pg_warehouse_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")
    warehouse = Warehouse(url)
    warehouse.create_tables()
    warehouse.dispose()
    return url


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def healthy_env(url: str, receiver: WebhookReceiver, home: str, sandbox: Sandbox) -> dict[str, str]:
    return {
        **SECRETS,
        "SCHWAB_API_BASE": sandbox.url("schwab"),
        "POLYGON_API_BASE": sandbox.url("polygon"),
        "DATABASE_URL": url,
        "VOLARIS_CHAIN_PROVIDERS": "schwab,polygon",
        "VOLARIS_INTRADAY_PROVIDERS": "polygon",
        "VOLARIS_DAILY_PROVIDERS": "polygon",
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT": (NOW - timedelta(days=1)).isoformat(),
        "DISCORD_WEBHOOK_URL": receiver.webhook_url(),
        "DAGSTER_HOME": home,
    }


def by_area(checks: list[doctor.Check]) -> dict[str, doctor.Check]:
    return {check.area: check for check in checks}


def assert_no_secret(text: str, receiver: WebhookReceiver) -> None:
    for value in [*SECRETS.values(), DB_PASSWORD, receiver.token, receiver.webhook_url()]:
        assert value not in text


def test_healthy_deployment_passes_and_only_pings_when_asked(
    warehouse_url, receiver, tmp_path, sandbox
):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as instance:
        instance.add_daemon_heartbeat(DaemonHeartbeat(NOW.timestamp() - 5, "SENSOR", "d1", None))
    env = healthy_env(warehouse_url, receiver, str(tmp_path), sandbox)

    checks = doctor.run_checks(env, ping=False, now=NOW)
    assert receiver.requests == []
    report = doctor.render(checks)
    assert_no_secret(report, receiver)
    areas = by_area(checks)
    assert areas["warehouse"].status is doctor.Status.OK
    assert "postgres:***@" in areas["warehouse"].detail
    assert areas["provider schwab (chain)"].status is doctor.Status.OK
    assert "expires in 6 d" in areas["provider schwab (chain)"].detail
    assert areas["provider polygon (chain, intraday, daily)"].status is doctor.Status.OK
    for name in ("schwab", "polygon"):  # the sandbox answers 404 at a bare base URL
        assert areas[f"reach {name}"].status is doctor.Status.OK
        assert areas[f"reach {name}"].detail.startswith(f"{sandbox.url(name)}: reachable, HTTP")
    assert areas["dagster daemon"].status is doctor.Status.OK
    assert not [c for c in checks if c.status is doctor.Status.FAIL], report

    pinged = doctor.run_checks(env, ping=True, now=NOW)
    assert by_area(pinged)["webhook ping"].status is doctor.Status.OK
    assert len(receiver.requests) == 1
    assert receiver.requests[0].payload["embeds"][0]["title"] == "Volaris doctor"


def test_each_broken_part_is_named_and_fails(pg_warehouse_url, receiver, tmp_path, sandbox):
    env = {
        **{k: v for k, v in SECRETS.items() if k != "POLYGON_API_KEY"},
        "SCHWAB_API_BASE": sandbox.url("schwab"),
        "POLYGON_API_BASE": sandbox.url("polygon"),
        "DATABASE_URL": pg_warehouse_url,  # no tables: nothing ever materialized here
        "VOLARIS_CHAIN_PROVIDERS": "schwab,polygon,bogus",
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT": (NOW - timedelta(days=8)).isoformat(),
        "DISCORD_WEBHOOK_URL": "https://example.com/not-a-webhook",
        "DAGSTER_HOME": str(tmp_path / "missing"),
    }
    areas = by_area(doctor.run_checks(env, ping=False, now=NOW))
    failures = {area: c.detail for area, c in areas.items() if c.status is doctor.Status.FAIL}

    assert "missing contract tables" in failures["warehouse"]
    assert "sync_stock_results" in failures["warehouse"]
    assert "expired 1 d 0 h ago" in failures["provider schwab (chain)"]
    assert failures["provider polygon (chain)"] == "missing settings: POLYGON_API_KEY"
    assert "unknown provider" in failures["provider bogus (chain)"]
    assert "not a webhook URL" in failures["webhook"]
    assert "does not exist" in failures["dagster"]
    assert receiver.requests == []


def test_token_about_to_lapse_and_unreachable_database(receiver, tmp_path, sandbox):
    env = {
        **SECRETS,
        "SCHWAB_API_BASE": sandbox.url("schwab"),
        "DATABASE_URL": f"postgresql://postgres:{DB_PASSWORD}@127.0.0.1:1/nowhere",
        "VOLARIS_CHAIN_PROVIDERS": "schwab",
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT": (NOW - timedelta(days=6, hours=2)).isoformat(),
    }
    checks = doctor.run_checks(env, ping=False, now=NOW)
    areas = by_area(checks)
    assert areas["warehouse"].status is doctor.Status.FAIL
    assert "cannot connect" in areas["warehouse"].detail
    schwab = areas["provider schwab (chain)"]
    assert schwab.status is doctor.Status.WARN and "expires in 22 h" in schwab.detail
    assert areas["webhook"].status is doctor.Status.WARN
    assert_no_secret(doctor.render(checks), receiver)


def test_the_command_exits_non_zero_on_failure(warehouse_url, receiver, tmp_path, sandbox):
    env = {
        **healthy_env(warehouse_url, receiver, str(tmp_path), sandbox),
        "SCHWAB_REFRESH_TOKEN_ISSUED_AT": "last tuesday",
        "PATH": "/usr/bin:/bin",
    }
    done = subprocess.run(
        [sys.executable, "-m", "volaris_assets.doctor"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "SCHWAB_REFRESH_TOKEN_ISSUED_AT is not an ISO-8601 time" in done.stdout
    assert_no_secret(done.stdout + done.stderr, receiver)
    assert receiver.requests == []


def test_a_provider_that_does_not_answer_fails_with_its_category(sandbox, receiver):
    """A base URL on a closed port is refused, a host name that does not resolve is
    unreachable, the sandbox answers: each provider connected to, nothing secret printed, and
    the simulated market (nothing to connect to) left out."""
    refused = f"http://127.0.0.1:{closed_port()}/v1"
    env = {
        **SECRETS,
        "TIINGO_API_KEY": "doctor-canary-tiingo-0006",
        "VOLARIS_CHAIN_PROVIDERS": "polygon,simulated",
        "VOLARIS_DAILY_PROVIDERS": "tiingo,schwab",
        "POLYGON_API_BASE": sandbox.url("polygon"),
        "TIINGO_API_BASE": refused,
        "SCHWAB_API_BASE": "http://volaris-doctor-test.invalid/api",
    }
    checks = [c for c in doctor.run_checks(env, ping=False, now=NOW) if c.area.startswith("reach")]
    areas = by_area(checks)
    assert sorted(areas) == ["reach polygon", "reach schwab", "reach tiingo"]
    assert areas["reach polygon"].status is doctor.Status.OK
    assert areas["reach tiingo"].status is doctor.Status.FAIL
    assert areas["reach tiingo"].detail == f"{refused}: refused (nothing listens on that port)"
    assert areas["reach schwab"].status is doctor.Status.FAIL
    assert "unreachable (the host name does not resolve)" in areas["reach schwab"].detail
    report = doctor.render(checks)
    assert_no_secret(report, receiver)
    assert "doctor-canary-tiingo-0006" not in report


def test_a_webhook_url_without_its_token_fails_as_the_settings_check_says():
    checks = doctor.check_webhook(
        {"DISCORD_WEBHOOK_URL": "https://discord.com/api/webhooks/123456"}, ping=False
    )
    assert [(c.status, c.detail) for c in checks] == [
        (
            doctor.Status.FAIL,
            "DISCORD_WEBHOOK_URL is not a webhook URL (no /api/webhooks/ID/TOKEN path)",
        )
    ]


def test_history_and_profile_providers_are_checked_and_reached(sandbox):
    env = {
        "VOLARIS_HISTORY_PROVIDERS": "databento,polygon",
        "VOLARIS_PROFILE_PROVIDERS": "finnhub",
        "POLYGON_API_KEY": SECRETS["POLYGON_API_KEY"],
        "FINNHUB_API_KEY": "doctor-canary-finnhub-0007",
        "POLYGON_API_BASE": sandbox.url("polygon"),
        "FINNHUB_API_BASE": sandbox.url("finnhub"),
        "DATABENTO_API_BASE": sandbox.url("databento"),
    }
    areas = by_area(doctor.check_providers(env, NOW) + doctor.check_reachability(env))
    assert areas["provider databento (history)"].status is doctor.Status.FAIL
    assert areas["provider databento (history)"].detail == "missing settings: DATABENTO_API_KEY"
    assert areas["provider polygon (history)"].status is doctor.Status.OK
    assert areas["provider finnhub (profile)"].status is doctor.Status.OK
    for name in ("databento", "finnhub", "polygon"):
        assert areas[f"reach {name}"].status is doctor.Status.OK


@pytest.mark.parametrize(
    "url", ["abc", "mysql://u:pw@127.0.0.1:1/x", "postgresql://u:pw@[::1/x", "sqlite://tmp/w.db"]
)
def test_a_malformed_database_url_is_reported_not_a_crash(url, tmp_path):
    """The settings line names the problem; the warehouse check does not then try the URL
    (it used to end the report with SQLAlchemy's traceback)."""
    checks = doctor.run_checks({"DATABASE_URL": url}, ping=False, now=NOW)
    settings_lines = [c for c in checks if c.area == "settings"]
    assert [c.status for c in settings_lines] == [doctor.Status.FAIL]
    assert "DATABASE_URL" in settings_lines[0].detail
    assert [c.detail for c in checks if c.area == "warehouse"] == [
        "not checked: DATABASE_URL is invalid (above)"
    ]


def test_a_section_that_breaks_is_one_failure_line_not_the_end_of_the_report():
    def broken() -> list[doctor.Check]:
        raise ModuleNotFoundError("MySQLdb")

    assert doctor._guarded("warehouse", broken) == [
        doctor.Check("warehouse", doctor.Status.FAIL, "could not be checked (ModuleNotFoundError)")
    ]


def test_a_budget_last_spent_at_another_pace_is_a_warning(tmp_path):
    """The doctor reads the budget at this environment's limits; a store another deployment
    of the account last spent at other limits is named, with the setting to align."""
    env = {
        "VOLARIS_CHAIN_PROVIDERS": "polygon",
        "POLYGON_API_KEY": SECRETS["POLYGON_API_KEY"],
        "VOLARIS_BUDGET_FILE": str(tmp_path / "budget.db"),
        "VOLARIS_RATE_LIMITS": "polygon=100/1",
    }

    def spend_at(rate_limits: str) -> None:
        limits = budget_limits(parse_rate_limits(rate_limits))
        budget = open_budget(limits, BudgetConfig.from_env(env))
        try:
            asyncio.run(budget.acquire("polygon"))
        finally:
            budget.close()

    spend_at("polygon=50/1")
    [check] = doctor.check_budgets(env)
    assert check.status is doctor.Status.WARN
    assert check.detail.startswith("5820/min burst ")  # this environment's pace: 97 a second
    assert "; last reserved at 2910/min burst " in check.detail
    assert check.detail.endswith(
        "the same VOLARIS_RATE_LIMITS, VOLARIS_BUDGET_HOSTS and VOLARIS_BUDGET_PROCESSES"
    )

    spend_at("polygon=100/1")
    [check] = doctor.check_budgets(env)
    assert check.status is doctor.Status.OK and "last reserved" not in check.detail


def test_a_full_disk_under_a_sqlite_warehouse_fails(tmp_path):
    """A run that filled the disk fails with 'disk full', yet the warehouse still opens: the
    doctor says what is wrong instead of 'OK warehouse'."""
    with tmpfs(tmp_path / "disk", "2m") as disk:
        path = disk / "volaris.db"
        warehouse = Warehouse(f"sqlite:///{path}")
        warehouse.create_tables()
        warehouse.dispose()
        (disk / "filler").write_bytes(b"\0" * (disk_free(disk) - 4096))
        areas = by_area(doctor.check_warehouse({"DATABASE_URL": f"sqlite:///{path}"}))
    assert areas["warehouse disk"].status is doctor.Status.FAIL
    assert areas["warehouse disk"].detail.endswith("writes fail; free space first")
    assert f"under {disk}" in areas["warehouse disk"].detail


def disk_free(path) -> int:
    return shutil.disk_usage(path).free


def test_a_postgresql_user_who_cannot_write_the_warehouse_fails(pg_warehouse_url):
    """A role granted SELECT only passed as OK, and the first run failed on its first write."""
    import uuid

    import sqlalchemy as sa

    from volaris_assets.warehouse.urls import normalize_url

    warehouse = Warehouse(pg_warehouse_url)
    warehouse.create_tables()
    role = f"doctor_ro_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(normalize_url(pg_warehouse_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE ROLE {role} LOGIN")
            conn.exec_driver_sql(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
            conn.exec_driver_sql(f"GRANT INSERT, UPDATE, DELETE ON quotes TO {role}")
        url = sa.make_url(pg_warehouse_url).set(username=role, password=None)
        env = {"DATABASE_URL": url.render_as_string(hide_password=False)}
        (check,) = [c for c in doctor.check_warehouse(env) if c.area == "warehouse"]
        assert check.status is doctor.Status.FAIL
        assert f"{role} cannot write " in check.detail and "quotes," not in check.detail
        assert "option_snapshots" in check.detail and "GRANT" in check.detail
        assert "price_alert_triggers" in check.detail  # the contract's alert tables too
        owner = {"DATABASE_URL": pg_warehouse_url}
        assert [c.status for c in doctor.check_warehouse(owner)] == [doctor.Status.OK]
    finally:
        warehouse.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP OWNED BY {role}")
            conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def test_a_budget_on_its_fallback_says_why_the_shared_store_was_passed_over(tmp_path):
    """Redis refusing: the doctor's line said "(FALLBACK)" and only a run's log said why."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    env = {
        "VOLARIS_CHAIN_PROVIDERS": "polygon",
        "POLYGON_API_KEY": SECRETS["POLYGON_API_KEY"],
        "VOLARIS_BUDGET_FILE": str(tmp_path / "budget.db"),
        "REDIS_URL": f"redis://127.0.0.1:{closed}/0",
    }
    [check] = doctor.check_budgets(env)
    assert check.status is doctor.Status.WARN
    assert f"(FALLBACK: redis at 127.0.0.1:{closed}/0 (" in check.detail
    assert "onnect" in check.detail  # the refused connection, by its error
