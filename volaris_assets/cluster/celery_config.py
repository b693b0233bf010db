"""What the run process (the executor) and every worker must agree on: broker, result backend
and the Celery settings that make a lost worker's step run again elsewhere.

Broker: RabbitMQ. A step is acknowledged only when it ends (`task_acks_late`); when a worker
dies, its connection closes and RabbitMQ puts the unacknowledged step back in the queue at once,
for another worker. Redis as a broker redelivers only after its `visibility_timeout` (an hour by
default), and runs twice any step longer than that timeout.

Result backend: `rpc://` (results as messages back to the run process that submitted the step)
unless VOLARIS_CELERY_BACKEND_URL names another. The run process is the only reader of a step's
result and reads it once; the step's events are already in Dagster's PostgreSQL event log,
written by the worker. A stored result (Redis) would outlive only a run process that died, and a
dead run process is re-run whole by `run_retries`, which submits its steps again anyway.

A step may therefore run twice (a worker killed mid-step): that is safe because every write is
an idempotent upsert, one transaction per symbol, with the symbol's outcome row in the same
transaction (volaris_assets/ingest/fanout.py).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

BROKER_ENV = "VOLARIS_CELERY_BROKER_URL"
BACKEND_ENV = "VOLARIS_CELERY_BACKEND_URL"
DEFAULT_BACKEND = "rpc://"

CONFIG_SOURCE: dict[str, Any] = {
    # Acknowledge a step when it ends: a dead worker's step goes back to the queue.
    "task_acks_late": True,
    # A pool child killed (OOM) while its parent lives: back to the queue too, not a failure.
    "task_reject_on_worker_lost": True,
    # One step reserved per slot, so a busy worker holds no step an idle one could run.
    "worker_prefetch_multiplier": 1,
    # Workers started before RabbitMQ (a host reboot) wait for it instead of exiting.
    "broker_connection_retry_on_startup": True,
}


class ClusterNotConfigured(RuntimeError):
    """The cluster layout was loaded without a broker to send steps to."""


def broker_url(env: Mapping[str, str] | None = None) -> str:
    """The broker URL, or a one-sentence error naming the variable (never its value)."""
    value = (env if env is not None else os.environ).get(BROKER_ENV, "").strip()
    if not value:
        raise ClusterNotConfigured(
            f"the cluster layout needs {BROKER_ENV} (the RabbitMQ broker, e.g. "
            "amqp://volaris:secret@rabbitmq.internal:5672/volaris) on the run hosts and every "
            "worker"
        )
    return value


def backend_url(env: Mapping[str, str] | None = None) -> str:
    return (env if env is not None else os.environ).get(BACKEND_ENV, "").strip() or DEFAULT_BACKEND


def executor_config(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `celery_executor` config. Broker and backend are read from the environment when a run
    starts (`{"env": ...}`), so their passwords are never part of a job's stored config."""
    broker_url(env)  # fail at load, with the variable's name, not at the first run
    backend = backend_url(env)
    return {
        "broker": {"env": BROKER_ENV},
        "backend": {"env": BACKEND_ENV} if backend != DEFAULT_BACKEND else DEFAULT_BACKEND,
        "config_source": CONFIG_SOURCE,
    }


def broker_url_form(text: str) -> str:
    """VOLARIS_CELERY_BROKER_URL's form, for the settings model."""
    parts = urlsplit(text)
    if parts.scheme not in ("amqp", "amqps", "pyamqp") or not parts.hostname:
        raise ValueError("not an amqp:// URL with a host")
    return text


def backend_url_form(text: str) -> str:
    """VOLARIS_CELERY_BACKEND_URL's form, for the settings model."""
    parts = urlsplit(text)
    if parts.scheme not in ("rpc", "redis", "rediss"):
        raise ValueError("not rpc:// or a redis:// URL")
    return text
