"""What a newcomer reads on Discord: a failed `make materialize` run is posted, a recovery only
follows a failure people saw, a 0/N scan says the providers failed, the digest links to the UI
and explains a missing IV rank, and simulated data says so. Real runs on a real instance, a
loopback webhook receiving real HTTP."""

import json
from datetime import UTC, date, datetime
from pathlib import Path

import dagster as dg
import pytest

from volaris_assets import settings
from volaris_assets.monitoring.check_alerts import make_check_failure_sensor
from volaris_assets.monitoring.digest import daily_digest_job
from volaris_assets.monitoring.run_failure import make_discord_on_run_failure_sensor
from volaris_assets.monitoring.scan_summary import scan_summary_sensor
from volaris_assets.resources.definitions import resources as bound_resources
from volaris_assets.resources.market_data import MarketDataResource
from volaris_assets.resources.notifier import DiscordNotifier
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.scan.results_csv import CSV_NAME
from volaris_assets.universe.assets import scan_universe, sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.monitoring_support import embeds, notifier_for
from volaris_assets_tests.pipeline_support import resources, sandbox_market
from volaris_assets_tests.webhook_receiver import WebhookReceiver

UI = "https://dagster.example.test"


@pytest.fixture
def receiver():
    with WebhookReceiver() as running:
        yield running


# The name a code location gives its `Definitions`: the daemon evaluates sensors under it.
REPOSITORY = "__repository__"


def tick(sensor, instance, res, cursor=None, definitions=None):
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=res,
        definitions=definitions,
        repository_name=REPOSITORY,
    ) as context:
        return sensor.evaluate_tick(context)


@dg.asset
def exploding() -> None:
    raise RuntimeError("upstream exploded")


def test_a_run_failed_in_process_like_make_materialize_is_posted(instance, receiver, tmp_path):
    """`make materialize` runs `dg.materialize()` on the instance: such a run has no code
    location origin, which Dagster's default matching skipped without a word."""
    sensor = make_discord_on_run_failure_sensor()
    defs = dg.Definitions(assets=[exploding], sensors=[sensor])
    notify = {"notifier": notifier_for(receiver, tmp_path)}
    cursor = tick(sensor, instance, notify, definitions=defs).cursor  # the daemon's first tick
    failed = dg.materialize([exploding], instance=instance, raise_on_error=False)
    assert not failed.success and failed.dagster_run.remote_job_origin is None
    cursor = tick(sensor, instance, notify, cursor, defs).cursor
    tick(sensor, instance, notify, cursor, defs)  # seen: not posted again

    [embed] = embeds(receiver)
    assert embed["title"] == f"Run failed: {failed.dagster_run.job_name} (exploding)"
    assert "upstream exploded" in embed["description"]


CHECK_STATE = "check_state.json"


def flaky_check_defs(state: Path) -> tuple[dg.AssetsDefinition, dg.AssetChecksDefinition]:
    @dg.asset(name="watched")
    def watched() -> None:
        return None

    @dg.asset_check(asset=watched, name="row_count_sane")
    def row_count_sane() -> dg.AssetCheckResult:
        passed = json.loads(state.read_text())["passed"]
        return dg.AssetCheckResult(passed=passed, description="rows: 0" if not passed else "ok")

    return watched, row_count_sane


def evaluate(check, instance, state: Path, passed: bool) -> None:
    """Run the check alone (as the UI's "Execute checks" does) with the given outcome."""
    state.write_text(json.dumps({"passed": passed}))
    asset_key = next(iter(check.check_keys)).asset_key
    job = (
        dg.Definitions(assets=[dg.AssetSpec(asset_key)], asset_checks=[check])
        .resolve_implicit_global_asset_job_def()
        .get_subset(asset_selection=set(), asset_check_selection=check.check_keys)
    )
    assert job.execute_in_process(instance=instance).success


def test_a_recovery_is_only_posted_after_a_failure_people_saw(instance, receiver, tmp_path):
    state = tmp_path / CHECK_STATE
    asset, check = flaky_check_defs(state)
    sensor = make_check_failure_sensor()
    defs = dg.Definitions(assets=[asset], asset_checks=[check], sensors=[sensor])
    notify = {"notifier": notifier_for(receiver, tmp_path)}
    cursor = None

    def step(passed: bool, *, discord_down: bool = False) -> list[str]:
        nonlocal cursor
        evaluate(check, instance, state, passed)
        if discord_down:
            receiver.fail_next(4, status=502)  # the first try and 3 retries all fail
        cursor = tick(sensor, instance, notify, cursor, defs).cursor
        return [e["title"] for e in embeds(receiver)]

    failed = "Check failed: watched · row_count_sane"
    recovered = "Check recovered: watched · row_count_sane"
    assert step(False, discord_down=True) == []  # the failure reaches nobody
    assert step(False) == [failed]  # announced at its next evaluation
    assert step(True) == [failed, recovered]
    assert step(False, discord_down=True) == [failed, recovered]
    assert step(True) == [failed, recovered]  # no "Check recovered" out of nowhere


def test_simulated_data_is_said_in_every_message(monkeypatch, receiver, tmp_path):
    monkeypatch.setenv("VOLARIS_CHAIN_PROVIDERS", "polygon,simulated")
    monkeypatch.setenv("POLYGON_API_KEY", "wording-test-polygon-key")
    monkeypatch.delenv("VOLARIS_DAILY_PROVIDERS", raising=False)
    monkeypatch.delenv("VOLARIS_INTRADAY_PROVIDERS", raising=False)
    bound = bound_resources()["notifier"]
    assert bound.simulated_capabilities == ["intraday", "daily"]  # chain is polygon first

    simulated = DiscordNotifier(
        webhook_url=receiver.webhook_url(),
        simulated_capabilities=settings.load().simulated_capabilities(),
    )
    real = DiscordNotifier(webhook_url=receiver.webhook_url())
    assert simulated.notify("Daily digest for Tue 2026-11-24", "moves")
    assert real.notify("Daily digest for Tue 2026-11-24", "moves")
    marked, plain = embeds(receiver)
    assert marked["title"] == "[simulated] Daily digest for Tue 2026-11-24"
    assert marked["footer"]["text"].startswith("Simulated market data (intraday, daily)")
    assert plain["title"] == "Daily digest for Tue 2026-11-24" and "footer" not in plain


def outage_scan(url, instance, sandbox, threshold):
    """Universe, then a scan while every chain request fails with a 5xx."""
    chain = MarketDataResource(
        capability="chain",
        **sandbox_market(sandbox.settings(), "schwab", retry_attempts=1),
        min_success_rate=threshold,
    )
    res = {**resources(url), "chain_data": chain}
    dg.materialize([sp500_constituents, scan_universe], resources=res, instance=instance)
    sandbox.set_faults("server_error=1.0")
    return dg.materialize(
        [wheel_premiums],
        partition_key="2026-03-10",
        resources=res,
        instance=instance,
        raise_on_error=False,
    )


def test_a_scan_with_every_symbol_failed_says_the_providers_failed(
    sqlite_warehouse_url, small_universe, instance, receiver, tmp_path, clean_sandbox
):
    scan = outage_scan(sqlite_warehouse_url, instance, clean_sandbox, threshold=0.0)
    assert scan.success  # a threshold of 0 lets a 0/N scan materialize
    tick(scan_summary_sensor, instance, {"notifier": notifier_for(receiver, tmp_path)})

    [request] = receiver.requests
    embed = request.payload["embeds"][0]
    total = len(small_universe)
    assert embed["title"].startswith(f"Wheel scan 2026-03-10: 0/{total} symbols ok")
    assert embed["description"].startswith(
        f"No premiums: all {total} symbols failed (server_error {total}): a provider problem"
    )
    assert "delta band" in embed["description"] and CSV_NAME in request.files


def test_a_scan_below_the_threshold_posts_its_failure_with_the_results_csv(
    sqlite_warehouse_url, small_universe, instance, receiver, tmp_path, clean_sandbox
):
    sensor = make_discord_on_run_failure_sensor()
    defs = dg.Definitions(sensors=[sensor])
    notify = {"notifier": notifier_for(receiver, tmp_path)}
    cursor = tick(sensor, instance, notify, definitions=defs).cursor
    scan = outage_scan(sqlite_warehouse_url, instance, clean_sandbox, threshold=0.5)
    assert not scan.success
    tick(sensor, instance, notify, cursor, defs)

    [request] = receiver.requests
    embed = request.payload["embeds"][0]
    assert embed["title"].startswith("Run failed: ")
    assert f"0 of {len(small_universe)} symbols written" in embed["description"]
    assert "server_error" in embed["description"]
    rows = request.files[CSV_NAME].content.decode().splitlines()
    assert len(rows) == 1 + len(small_universe)
    assert all(row.split(",")[1] == "failed" for row in rows[1:]), rows[1]


def iv_row(symbol: str, day: date, atm_iv: float, history: int) -> dict:
    """An `iv_metrics` row as the asset writes it while history is short: no rank yet."""
    return {
        "symbol": symbol,
        "date": day,
        "atm_iv_30d": atm_iv,
        "iv_rank": None,
        "iv_percentile": None,
        "iv_history_days": history,
        "provider": "simulated",
        "updated_at": datetime(2026, 11, 24, 22, 0, tzinfo=UTC),
    }


def test_the_digest_links_to_the_ui_and_says_iv_rank_needs_history(
    warehouse_url, instance, receiver, tmp_path, monkeypatch
):
    monkeypatch.setenv("DAGSTER_UI_URL", UI)
    warehouse = Warehouse(warehouse_url)
    warehouse.create_tables()
    ivs = {"AAPL": 0.31, "MSFT": 0.24, "KO": 0.17}
    with warehouse.transaction() as conn:  # two sessions of IV: far from a rank
        rows = [
            iv_row(symbol, day, iv + 0.01 * history, history)
            for symbol, iv in ivs.items()
            for history, day in enumerate((date(2026, 11, 23), date(2026, 11, 24)), start=1)
        ]
        warehouse.upsert(conn, "iv_metrics", rows)
    warehouse.dispose()
    res = {**resources(warehouse_url), "notifier": notifier_for(receiver, tmp_path)}
    result = daily_digest_job.execute_in_process(
        instance=instance,
        resources=res,
        run_config={"ops": {"post_daily_digest": {"config": {"day": "2026-11-25"}}}},
    )
    assert result.success

    [embed] = embeds(receiver)
    assert embed["url"] == f"{UI}/assets/iv_metrics"
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["Highest IV (30-day ATM)"].splitlines() == [
        "AAPL 33.0%",
        "MSFT 26.0%",
        "KO 19.0%",
    ]
    assert fields["Highest IV rank"] == (
        "IV rank needs history: 2 of 252 sessions of IV history (ranks start at 20)"
    )
    assert fields["Biggest IV changes"].splitlines()[0] == "AAPL +1.0 pts (IV 33.0%)"
