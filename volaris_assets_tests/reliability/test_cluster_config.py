"""The cluster code location without a broker running: what it sends where, and what it refuses.

(test_cluster.py runs it for real; these are the cheap checks that say why when that fails.)
"""

from __future__ import annotations

import importlib
import sys

import pytest

from volaris_assets.cluster.celery_config import (
    BACKEND_ENV,
    BROKER_ENV,
    ClusterNotConfigured,
    executor_config,
)
from volaris_assets.cluster.queues import COMPUTE_QUEUE, FETCH_QUEUE, QUEUE_TAG
from volaris_assets.options.assets import option_chains
from volaris_assets.prices.assets import daily_bars, intraday_bars
from volaris_assets.scan.assets import wheel_premiums
from volaris_assets.volatility.assets import iv_metrics

BROKER = "amqp://volaris:s3cret-pw@rabbitmq.internal:5672/volaris"


def test_steps_carry_their_queue():
    for asset in (option_chains, daily_bars, intraday_bars, wheel_premiums):
        assert asset.op.tags[QUEUE_TAG] == FETCH_QUEUE, asset.key
    assert iv_metrics.op.tags[QUEUE_TAG] == COMPUTE_QUEUE


def test_location_runs_every_job_on_celery(monkeypatch):
    monkeypatch.setenv(BROKER_ENV, BROKER)
    sys.modules.pop("volaris_assets.cluster.definitions", None)
    defs = importlib.import_module("volaris_assets.cluster.definitions").defs
    for job in ("option_chains_job", "iv_metrics_job", "daily_bars_job"):
        assert defs.resolve_job_def(job).executor_def.name == "volaris_celery"


def test_broker_password_is_read_at_run_time_not_stored(monkeypatch):
    monkeypatch.setenv(BROKER_ENV, BROKER)
    monkeypatch.setenv(BACKEND_ENV, "redis://:r3dis-pw@redis.internal:6379/1")
    config = executor_config()
    assert config["broker"] == {"env": BROKER_ENV}
    assert config["backend"] == {"env": BACKEND_ENV}
    assert "pw" not in repr(config)
    assert config["config_source"]["task_acks_late"] is True


def test_missing_broker_names_the_variable(monkeypatch):
    monkeypatch.delenv(BROKER_ENV, raising=False)
    with pytest.raises(ClusterNotConfigured, match=BROKER_ENV):
        executor_config()
