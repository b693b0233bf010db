"""Every Dagster internal the small box relies on, imported here and nowhere else.

The in-process daemon (`daemon.py`) and the run launcher (`launcher.py`) do what Dagster offers
no public API for: run the daemon controller over a code location loaded in-process, and start
`dagster api execute_run` workers the way Dagster's Docker and Kubernetes launchers do. A minor
Dagster upgrade may move or change any of these; volaris_assets_tests/test_idiom_internals.py
checks each name and the signature we call it with against the installed Dagster, so such an
upgrade fails there, loudly, rather than on a box at 3 a.m.
"""

from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.origin import get_python_environment_entry_point
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.controller import daemon_controller_from_instance
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass
from dagster._serdes.config_class import ConfigurableClassData
from dagster._utils.interrupts import capture_interrupts

__all__ = [
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "ExecuteRunArgs",
    "InProcessCodeLocationOrigin",
    "InProcessWorkspaceLoadTarget",
    "LaunchRunContext",
    "LoadableTargetOrigin",
    "RunLauncher",
    "WorkerStatus",
    "capture_interrupts",
    "daemon_controller_from_instance",
    "get_python_environment_entry_point",
]
