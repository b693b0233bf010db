"""No secret leaks: every credential, the database password and the Discord webhook URL are set to
canary values, the whole pipeline runs against the sandbox (which accepts exactly those values)
with faults on, a run fails, the notification sensors post; then every place the platform writes
text is searched for the canaries. Zero hits.

Searched: the console output, Python log records, Dagster's event storage (every event of every
run, metadata included), every file the test's processes wrote (event-log databases, compute
logs, the scan-summary CSV, the notifier's dedup store), every row of every warehouse table, and
the webhook bodies.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from volaris_assets.monitoring.run_failure import make_discord_on_run_failure_sensor
from volaris_assets.monitoring.scan_summary import scan_summary_sensor
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.resources.definitions import resources as production_resources
from volaris_assets.sandbox.server import start_sandbox
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.volatility.assets import iv_metrics
from volaris_assets.warehouse.store import Warehouse
from volaris_assets.warehouse.tables import metadata
from volaris_assets_tests.reliability.market_setup import AS_OF, SESSION, SNAPSHOT
from volaris_assets_tests.webhook_receiver import WebhookReceiver

SYMBOLS = "AAPL,MSFT,ZZZZ"  # ZZZZ is unlisted in the sandbox: every provider's not-found path
FAULTS = {
    "server_error": 0.15,
    "rate_limit": 0.1,
    "expired_token": 0.1,
    "malformed": 0.1,
    "retry_after_s": 0.05,
}
PROVIDERS = {
    "VOLARIS_CHAIN_PROVIDERS": "schwab,polygon",
    "VOLARIS_INTRADAY_PROVIDERS": "alpaca,tiingo",
    "VOLARIS_DAILY_PROVIDERS": "databento,tiingo",
}
FAST = {
    "VOLARIS_RATE_LIMITS": ",".join(
        f"{p}=100/1" for p in ("schwab", "polygon", "alpaca", "tiingo", "databento")
    ),
    "VOLARIS_RETRY_BASE_S": "0.01",
}


def canary(name: str) -> str:
    return f"canary{name}{uuid.uuid4().hex[:12]}"


@pytest.fixture
def canaries() -> dict[str, str]:
    """A distinct, searchable value per credential (Databento keys must start with db-)."""
    return {
        "SCHWAB_APP_KEY": canary("schwabapp"),
        "SCHWAB_SECRET_KEY": canary("schwabsecret"),
        "SCHWAB_REFRESH_TOKEN": canary("schwabrefresh"),
        "POLYGON_API_KEY": canary("polygon"),
        "TIINGO_API_KEY": canary("tiingo"),
        "ALPACA_API_KEY": canary("alpacakey"),
        "ALPACA_API_SECRET": canary("alpacasecret"),
        "FINNHUB_API_KEY": canary("finnhub"),
        "DATABENTO_API_KEY": "db-" + canary("databento"),
        "DATABASE_PASSWORD": canary("dbpassword"),
    }


def sandbox_keys(values: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        "schwab": {
            "app_key": values["SCHWAB_APP_KEY"],
            "secret": values["SCHWAB_SECRET_KEY"],
            "refresh_token": values["SCHWAB_REFRESH_TOKEN"],
        },
        "polygon": {"api_key": values["POLYGON_API_KEY"]},
        "tiingo": {"api_key": values["TIINGO_API_KEY"]},
        "alpaca": {"key_id": values["ALPACA_API_KEY"], "secret": values["ALPACA_API_SECRET"]},
        "finnhub": {"api_key": values["FINNHUB_API_KEY"]},
        "databento": {"api_key": values["DATABENTO_API_KEY"]},
    }


def spellings(value: str) -> set[str]:
    """The forms a leaked value could take in text: as is and URL-encoded."""
    return {value, quote(value, safe=""), quote(value)}


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return sorted(
        name for name, value in secrets.items() if any(s in text for s in spellings(value))
    )


def warehouse_text(url: str) -> str:
    warehouse = Warehouse(url)
    try:
        with warehouse.engine.connect() as conn:
            return "\n".join(
                repr(row)
                for table in metadata.sorted_tables
                for row in conn.execute(sa.select(table))
            )
    finally:
        warehouse.dispose()


def files_text(root: Path) -> str:
    return "\n".join(
        path.read_bytes().decode("utf-8", "replace") for path in root.rglob("*") if path.is_file()
    )


def test_no_canary_anywhere(canaries, scratch_db, tmp_path, monkeypatch, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    url = sa.make_url(scratch_db).set(password=canaries["DATABASE_PASSWORD"])
    database_url = url.render_as_string(hide_password=False)
    (tmp_path / "dagster_home").mkdir()
    with (
        WebhookReceiver() as receiver,
        start_sandbox(as_of=AS_OF, faults=FAULTS, keys=sandbox_keys(canaries)) as sandbox,
        dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance,
    ):
        secrets = {**canaries, "DISCORD_WEBHOOK_URL": receiver.webhook_url()}
        secrets["WEBHOOK_TOKEN"] = receiver.token
        environment = {
            **sandbox.settings(),
            **{k: v for k, v in canaries.items() if k != "DATABASE_PASSWORD"},
            **PROVIDERS,
            **FAST,
            "DATABASE_URL": database_url,
            "DISCORD_WEBHOOK_URL": receiver.webhook_url(),
            "VOLARIS_UNIVERSE": SYMBOLS,
            "VOLARIS_NOTIFY_DEDUP_DB": str(tmp_path / "dedup.db"),
        }
        for key, value in environment.items():
            monkeypatch.setenv(key, value)
        bound = production_resources()  # EnvVar bindings, as the code location has them

        def run(assets, partition=None, config=None):
            return dg.materialize(
                assets,
                partition_key=partition,
                resources=bound,
                instance=instance,
                run_config=config,
                raise_on_error=False,
            )

        results = [
            run([sp500_constituents, scan_universe]),
            run([option_chains], SNAPSHOT),
            run([daily_bars, intraday_bars], SESSION),
            run([iv_metrics], SESSION),
            run(
                [wheel_premiums],
                SESSION,
                {"ops": {"wheel_premiums": {"config": {"start_with_provider": "polygon"}}}},
            ),
        ]
        assert all(r.success for r in results)
        failed = run(
            [option_chains],
            SNAPSHOT,
            {"ops": {"option_chains": {"config": {"symbols": ["NOPE"]}}}},
        )
        assert not failed.success

        with dg.build_sensor_context(instance=instance, resources=bound) as context:
            scan_summary_sensor.evaluate_tick(context)
        failure_sensor = make_discord_on_run_failure_sensor()
        with dg.build_run_status_sensor_context(
            sensor_name=failure_sensor.name,
            dagster_event=failed.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=failed.dagster_run,
            resources={"notifier": bound["notifier"]},
        ) as context:
            failure_sensor(context)

        contacted = {p for (p, _, _), n in sandbox.stats.requests.items() if n}
        assert {"schwab", "polygon", "alpaca", "databento"} <= contacted
        assert sum(sandbox.stats.faults.values()) > 0
        assert len(receiver.requests) >= 2, "the sensors posted nothing"

        events = "\n".join(
            serialize_value(list(instance.all_logs(r.run_id))) for r in [*results, failed]
        )
        bodies = "\n".join(r.body.decode("utf-8", "replace") for r in receiver.requests)
        searched = {
            "event storage": events,
            "files": files_text(tmp_path),
            "warehouse": warehouse_text(database_url),
            "webhook bodies": bodies,
        }
    captured = capfd.readouterr()
    searched["console"] = captured.out + captured.err
    searched["log records"] = "\n".join(r.getMessage() for r in caplog.records)

    assert all(len(text) > 100 for text in searched.values()), {
        k: len(v) for k, v in searched.items()
    }
    found = {place: leaks(text, secrets) for place, text in searched.items()}
    assert found == {place: [] for place in searched}
