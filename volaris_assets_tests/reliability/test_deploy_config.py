"""The scale-out configuration in deploy/production/docker/ is loaded by Dagster itself (no Docker
engine runs on these machines, so this is as far as it can be exercised here), and its files
agree with each other and with the one-host production instance."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import dagster as dg
import sqlalchemy as sa
import yaml
from dagster._config import validate_config
from dagster._core.workspace.config_schema import WORKSPACE_CONFIG_SCHEMA

from volaris_assets.resources.market_data import SECRET_FIELDS
from volaris_assets.small_box.malloc import SETTINGS
from volaris_assets_tests.reliability.processes import BIN, free_port, running, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "production"
DOCKER = DEPLOY / "docker"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_docker_instance_is_the_production_instance_plus_a_launcher():
    production, docker = load(DEPLOY / "dagster.yaml"), load(DOCKER / "dagster.yaml")
    launcher = docker.pop("run_launcher")
    assert docker == production
    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")


def test_dagster_loads_the_docker_instance(scratch_db, tmp_path, monkeypatch):
    url = sa.make_url(scratch_db)
    for key, value in {
        "DAGSTER_PG_HOST": url.host,
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_USER": url.username,
        "DAGSTER_PG_PASSWORD": url.password or "",
        "DAGSTER_PG_DB": url.database,
    }.items():
        monkeypatch.setenv(key, value)
    shutil.copy(DOCKER / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher"
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert launcher.networks == ["volaris_network"]
        # Every credential a run needs reaches the run container, by name only.
        wanted = {*SECRET_FIELDS.values(), "DATABASE_URL", "DISCORD_WEBHOOK_URL"}
        assert wanted <= set(launcher.env_vars)
        assert all("=" not in name for name in launcher.env_vars)


def test_workspace_compose_and_image_agree():
    workspace = load(DOCKER / "workspace.yaml")
    assert validate_config(WORKSPACE_CONFIG_SCHEMA, workspace).success
    server = workspace["load_from"][0]["grpc_server"]
    compose = load(DOCKER / "docker-compose.yaml")
    services = compose["services"]
    assert server["host"] in services
    assert f'"{server["port"]}"' in (DOCKER / "Dockerfile").read_text()
    launcher = load(DOCKER / "dagster.yaml")["run_launcher"]["config"]
    assert compose["networks"]["volaris"]["name"] == launcher["network"]
    assert services["volaris_code"]["environment"]["DAGSTER_CURRENT_IMAGE"]
    documented = set(re.findall(r"^([A-Z_]+)=", (DOCKER / "env.example").read_text(), re.M))
    passed = set(launcher["env_vars"]) - {f"DAGSTER_PG_{k}" for k in ("HOST", "PORT")}
    assert passed <= documented, passed - documented


def test_the_image_tunes_malloc_as_the_small_box_does():
    """Every container of the image starts with the small box's malloc settings, whose values
    (and measurements) live in `small_box/malloc.py`."""
    dockerfile = (DOCKER / "Dockerfile").read_text()
    for variable, (_, value) in SETTINGS.items():
        assert re.search(rf"^\s*(ENV\s+)?{variable}={value}\b", dockerfile, re.M), variable


def test_the_one_machine_workspace_reaches_one_long_lived_code_server(tmp_path):
    """deploy/production/workspace.yaml, as the README's one-machine recipe uses it: the code
    server the recipe starts (`dagster api grpc`, on a free port here) serves the location the
    daemon and the web UI load from it."""
    workspace = load(DEPLOY / "workspace.yaml")
    assert validate_config(WORKSPACE_CONFIG_SCHEMA, workspace).success
    server = workspace["load_from"][0]["grpc_server"]
    assert (server["host"], server["location_name"]) == ("127.0.0.1", "volaris_assets")
    recipe = (DEPLOY / "README.md").read_text()
    assert (
        f"dagster api grpc -m volaris_assets.definitions -h 127.0.0.1 -p {server['port']}" in recipe
    )
    assert "dagster-daemon run -w deploy/production/workspace.yaml" in recipe

    port = free_port()
    copy = tmp_path / "workspace.yaml"
    copy.write_text(yaml.safe_dump({"load_from": [{"grpc_server": {**server, "port": port}}]}))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/w.db",
    }
    (tmp_path / "dagster.yaml").write_text("")
    command = [str(BIN / "dagster"), "api", "grpc", "-m", "volaris_assets.definitions"]
    with running([*command, "-h", "127.0.0.1", "-p", str(port)], env, tmp_path / "grpc.log"):
        wait_for(lambda: _listening(port), 120, "the code server")
        validated = subprocess.run(
            [str(BIN / "dagster"), "definitions", "validate", "-w", str(copy)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert validated.returncode == 0, validated.stderr[-2000:]
    assert "All code locations passed validation" in validated.stdout + validated.stderr


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0
