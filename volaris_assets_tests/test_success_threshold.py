"""A run that wrote (almost) nothing is an outage, not a success: it fails with its failure
categories in the message, so the partition is not marked materialized and the run-failure
notification and the retry sensor take it. Above the threshold a run succeeds as before.
Real runs: the Yahoo client against a port nobody listens on, on both warehouses."""

from __future__ import annotations

import socket

import dagster as dg

from volaris_assets.options.assets import option_chains
from volaris_assets.universe.assets import sp500_constituents
from volaris_assets.warehouse.store import Warehouse
from volaris_assets_tests.pipeline_support import SNAPSHOT, resources


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def dead_chain_provider(**tuning: object) -> dict[str, object]:
    return {
        "providers": "yahoo",
        "yahoo_api_base": f"http://127.0.0.1:{closed_port()}",
        "yahoo_cookie_url": f"http://127.0.0.1:{closed_port()}",
        "retry_attempts": 1,
        **tuning,
    }


def snapshot(url: str, instance: dg.DagsterInstance, **market: object) -> dg.ExecuteInProcessResult:
    res = resources(url)
    dg.materialize([sp500_constituents], resources=res, instance=instance)
    chain = resources(url, **dead_chain_provider(**market))["chain_data"]
    return dg.materialize(
        [option_chains],
        partition_key=SNAPSHOT,
        resources={**res, "chain_data": chain},
        instance=instance,
        raise_on_error=False,
    )


def failure_description(result: dg.ExecuteInProcessResult) -> str:
    [failure] = [e for e in result.all_events if e.is_step_failure]
    return failure.step_failure_data.user_failure_data.description


def test_a_run_that_wrote_nothing_fails_with_its_categories(
    warehouse_url, small_universe, instance
):
    result = snapshot(warehouse_url, instance)
    assert not result.success
    description = failure_description(result)
    assert description.startswith(f"option_chains {SNAPSHOT}: 0 of {len(small_universe)} symbols")
    assert "below the 50% threshold of VOLARIS_MIN_SUCCESS_RATE" in description
    assert "failures: " in description
    status = instance.get_status_by_partition(
        dg.AssetKey("option_chains"), [SNAPSHOT], option_chains.partitions_def
    )
    assert status[SNAPSHOT] != dg.AssetPartitionStatus.MATERIALIZED
    # The outcome rows are kept: they are what the retry sensor reads.
    warehouse = Warehouse(warehouse_url)
    rows = warehouse.read_frame(
        "SELECT status FROM sync_stock_results WHERE run_id = :run", run=result.run_id
    )
    warehouse.dispose()
    assert sorted(rows["status"]) == ["failed"] * len(small_universe)


def test_with_the_threshold_at_zero_the_run_succeeds_as_before(
    sqlite_warehouse_url, small_universe, instance
):
    assert snapshot(sqlite_warehouse_url, instance, min_success_rate=0.0).success
