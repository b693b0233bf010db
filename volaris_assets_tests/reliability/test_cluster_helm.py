"""deploy/cluster/helm/values.yaml, checked as far as it can be without the chart or a cluster.

The chart's own values.schema.json is not obtainable offline here (it ships in the chart, not in
any PyPI package). So the values are rendered into the instance configuration the chart's
templates make of them (templates/helpers/instance/_run-launcher.tpl and friends: camelCase
keys to Dagster's snake_case ones), and that configuration is validated with the schemas of the
classes that will read it, from the installed packages: dagster-k8s's K8sRunLauncher, Dagster's
QueuedRunCoordinator and instance schema, dagster-postgres's storage. What the chart itself
would reject (a key its schema forbids) is checked only against the key lists below, taken from
the chart's schema models (helm/dagster/schema/.../run_launcher.py) and its documented
`runK8sConfig`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from dagster import QueuedRunCoordinator
from dagster._config import validate_config
from dagster._core.instance.config import dagster_instance_config_schema
from dagster._core.storage.config import pg_config
from dagster_k8s import K8sRunLauncher

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "cluster" / "helm" / "values.yaml"
# runLauncher.config.k8sRunLauncher keys the chart accepts (its schema forbids others).
CHART_LAUNCHER_KEYS = {
    "image",
    "imagePullPolicy",
    "jobNamespace",
    "loadInclusterConfig",
    "kubeconfigFile",
    "envConfigMaps",
    "envSecrets",
    "envVars",
    "volumeMounts",
    "volumes",
    "labels",
    "failPodOnRunFailure",
    "resources",
    "runK8sConfig",
}
RUN_K8S_CONFIG_KEYS = {
    "containerConfig",
    "podSpecConfig",
    "podTemplateSpecMetadata",
    "jobSpecConfig",
    "jobMetadata",
}


def values() -> dict[str, Any]:
    return yaml.safe_load(VALUES.read_text())


def _snake(key: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in key)


def rendered_launcher(chart: dict[str, Any]) -> dict[str, Any]:
    """run_launcher.config as the chart's k8s run-launcher template renders it."""
    launcher = chart["runLauncher"]["config"]["k8sRunLauncher"]
    config: dict[str, Any] = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or "volaris",
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": "volaris-dagster",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}]
        + [source["name"] for source in launcher.get("envConfigMaps", [])],
    }
    if launcher.get("envSecrets"):
        config["env_secrets"] = [source["name"] for source in launcher["envSecrets"]]
    for key in ("envVars", "volumeMounts", "volumes", "labels"):
        if launcher.get(key):
            config[_snake(key)] = launcher[key]
    if launcher.get("runK8sConfig"):
        config["run_k8s_config"] = {_snake(k): v for k, v in launcher["runK8sConfig"].items()}
    return config


def rendered_coordinator(chart: dict[str, Any]) -> dict[str, Any]:
    queued = chart["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    return {
        "max_concurrent_runs": queued["maxConcurrentRuns"],
        "tag_concurrency_limits": queued["tagConcurrencyLimits"],
    }


def rendered_postgres(chart: dict[str, Any]) -> dict[str, Any]:
    postgresql = chart["postgresql"]
    return {
        "postgres_db": {
            "username": postgresql["postgresqlUsername"],
            "password": {"env": "DAGSTER_PG_PASSWORD"},
            "hostname": postgresql["postgresqlHost"],
            "db_name": postgresql["postgresqlDatabase"],
            "port": postgresql["service"]["port"],
        }
    }


def rendered_instance(chart: dict[str, Any]) -> dict[str, Any]:
    storage = rendered_postgres(chart)
    daemon = chart["dagsterDaemon"]
    return {
        "run_launcher": {
            "module": "dagster_k8s",
            "class": "K8sRunLauncher",
            "config": rendered_launcher(chart),
        },
        "run_storage": {
            "module": "dagster_postgres.run_storage",
            "class": "PostgresRunStorage",
            "config": storage,
        },
        "run_coordinator": {
            "module": "dagster.core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": rendered_coordinator(chart),
        },
        "run_monitoring": {
            "enabled": daemon["runMonitoring"]["enabled"],
            "start_timeout_seconds": daemon["runMonitoring"]["startTimeoutSeconds"],
            "poll_interval_seconds": daemon["runMonitoring"]["pollIntervalSeconds"],
        },
        "run_retries": {
            "enabled": daemon["runRetries"]["enabled"],
            "max_retries": daemon["runRetries"]["maxRetries"],
        },
        "telemetry": {"enabled": chart["telemetry"]["enabled"]},
    }


def _errors(result) -> list[str]:
    return [error.message for error in result.errors or []]


def test_values_use_only_keys_the_chart_accepts():
    chart = values()
    assert chart["runLauncher"]["type"] == "K8sRunLauncher"
    launcher = chart["runLauncher"]["config"]["k8sRunLauncher"]
    assert set(launcher) <= CHART_LAUNCHER_KEYS, set(launcher) - CHART_LAUNCHER_KEYS
    assert set(launcher.get("runK8sConfig", {})) <= RUN_K8S_CONFIG_KEYS
    # No Celery pieces under the K8s launcher, and no secret values in the file.
    assert not chart["rabbitmq"]["enabled"] and not chart["flower"]["enabled"]
    assert not [key for key in _keys(chart) if key.lower().endswith(("password", "token"))]


def _keys(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [k for key, value in node.items() for k in (key, *_keys(value))]
    if isinstance(node, list):
        return [k for item in node for k in _keys(item)]
    return []


def test_runs_get_the_code_servers_environment():
    chart = values()
    launcher = chart["runLauncher"]["config"]["k8sRunLauncher"]
    (deployment,) = chart["dagster-user-deployments"]["deployments"]
    assert deployment["envSecrets"] == launcher["envSecrets"]
    assert deployment["envConfigMaps"] == launcher["envConfigMaps"]
    module = deployment["dagsterApiGrpcArgs"][
        deployment["dagsterApiGrpcArgs"].index("--module-name") + 1
    ]
    assert module == "volaris_assets.definitions"


def test_rendered_instance_passes_dagsters_own_schemas():
    chart = values()
    instance = rendered_instance(chart)
    checks = {
        "instance": validate_config(dagster_instance_config_schema(), instance),
        "K8sRunLauncher": validate_config(
            K8sRunLauncher.config_type(), instance["run_launcher"]["config"]
        ),
        "QueuedRunCoordinator": validate_config(
            QueuedRunCoordinator.config_type(), instance["run_coordinator"]["config"]
        ),
        "postgres storage": validate_config(pg_config(), instance["run_storage"]["config"]),
    }
    failed = {name: _errors(result) for name, result in checks.items() if not result.success}
    assert not failed, failed


def test_schema_check_catches_a_wrong_key():
    """The validation above can fail: a misspelt launcher key is refused."""
    chart = values()
    config = rendered_launcher(chart)
    config["job_namespaces"] = "volaris"
    assert not validate_config(K8sRunLauncher.config_type(), config).success
