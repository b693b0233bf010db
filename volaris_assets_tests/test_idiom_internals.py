"""The Dagster internals the project uses, checked against the installed Dagster.

Everything private lives in volaris_assets/dagster_internals.py. This test names each
internal and the parameters, fields and members our code calls it with: a Dagster upgrade that
moves or reshapes one fails here, with the name in the message, instead of at a box's start.
It also holds the line: no other module of the package imports `dagster._…`.
"""

import ast
import inspect
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import freeze_time

from volaris_assets import dagster_internals as internals

PACKAGE = Path(__file__).resolve().parents[1] / "volaris_assets"
ISOLATED = PACKAGE / "dagster_internals.py"

# name: parameters (or NamedTuple fields) our calls pass, by keyword or position.
CALLED_WITH = {
    "ExecuteRunArgs": {"job_origin", "run_id", "instance_ref"},
    "InProcessCodeLocationOrigin": {"loadable_target_origin", "location_name"},
    "InProcessWorkspaceLoadTarget": {"origin"},
    "CheckRunHealthResult": {"status", "msg"},
    "daemon_controller_from_instance": {
        "instance",
        "workspace_load_target",
        "gen_daemons",
        "log_level",
    },
    "consume_new_runs_for_automatic_reexecution": {
        "workspace_process_context",
        "run_records",
        "logger",
    },
    "get_python_environment_entry_point": {"executable_path"},
    "LaunchRunContext": {"dagster_run"},
    "core_execute_run": {"recon_job", "dagster_run", "instance", "inject_env_vars"},
    "recon_job_from_origin": {"origin"},
}


def _parameters(obj: object) -> set[str]:
    fields = getattr(obj, "_fields", None)
    if fields is not None:  # NamedTuple-style records take their fields
        return set(fields)
    return set(inspect.signature(obj).parameters)


@pytest.mark.parametrize("name", sorted(CALLED_WITH))
def test_each_internal_still_takes_what_we_pass(name):
    missing = CALLED_WITH[name] - _parameters(getattr(internals, name))
    assert not missing, f"dagster changed {name}: no longer takes {sorted(missing)}"


def test_the_launcher_contract_is_unchanged():
    assert _parameters(internals.LoadableTargetOrigin) >= {
        "executable_path",
        "module_name",
        "attribute",
        "working_directory",
    }
    # What LocalProcessRunLauncher implements, and nothing more is demanded of it.
    assert internals.RunLauncher.__abstractmethods__ == {"launch_run", "terminate"}
    for hook in ("check_run_worker_health", "supports_check_run_worker_health"):
        assert hasattr(internals.RunLauncher, hook), hook
    assert internals.ConfigurableClass.__abstractmethods__ == {
        "config_type",
        "from_config_value",
        "inst_data",
    }
    assert {"RUNNING", "NOT_FOUND", "FAILED"} <= set(internals.WorkerStatus.__members__)
    with internals.capture_interrupts():
        pass


def test_the_sensors_clock_and_types_are_where_we_import_them():
    """The sensors read Dagster's mockable clock; `freeze_time` must still move it."""
    with freeze_time(86_400.0):
        assert internals.get_current_timestamp() == 86_400.0
        assert internals.get_current_datetime().timestamp() == 86_400.0
    assert {"SUCCEEDED", "FAILED"} <= set(internals.AssetCheckExecutionRecordStatus.__members__)
    job = dg.define_asset_job("probe", selection="*")
    assert isinstance(job, internals.UnresolvedAssetJobDefinition)


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [f"{path.name}:{node.lineno} {n}" for n in names if n.startswith("dagster._")]
    return found


def test_private_imports_stay_in_the_isolated_module():
    files = sorted(PACKAGE.rglob("*.py"))
    assert ISOLATED in files
    leaks = [hit for f in files if f != ISOLATED for hit in _private_imports(f)]
    assert not leaks, leaks
    assert _private_imports(ISOLATED), "the isolated module should be the one importing them"
