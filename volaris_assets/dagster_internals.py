"""Every Dagster internal the project relies on, imported here and nowhere else.

The small box's in-process daemon (`small_box/daemon.py`) and run launcher
(`small_box/launcher.py`) do what Dagster offers no public API for: run the daemon controller
over a code location loaded in-process, and start `dagster api execute_run` workers the way
Dagster's Docker and Kubernetes launchers do. The sensors read Dagster's clock
(`get_current_timestamp`), not the wall clock, because that is the clock Dagster's own
`freeze_time` moves in their tests; and two types Dagster hands us have no public name (the job
`define_asset_job` returns; the status of an asset check's execution record). The small box's
light lane (`small_box/light_lane.py`) executes a run on a thread of the daemon the way
`dagster api execute_run` does in a process of its own. Its retry daemon (`small_box/retries.py`)
is Dagster's, with a second look at failures a race in it passes over. The data of a run's
failure event (`JobFailureData`, its `SerializableErrorInfo`) has no public constructor: the
run-failure message reads it, and a test builds one.

A minor Dagster upgrade may move or change any of these; volaris_assets_tests/
test_idiom_internals.py checks each name and the signature we call it with against the installed
Dagster, so such an upgrade fails there, loudly, rather than on a box at 3 a.m.
"""

from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._core.events import JobFailureData
from dagster._core.launcher import (
    CheckRunHealthResult,
    LaunchRunContext,
    RunLauncher,
    WorkerStatus,
)
from dagster._core.origin import get_python_environment_entry_point
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.tags import AUTO_RETRY_RUN_ID_TAG, WILL_RETRY_TAG
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.workspace.context import IWorkspaceProcessContext, WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.auto_run_reexecution.auto_run_reexecution import (
    consume_new_runs_for_automatic_reexecution,
)
from dagster._daemon.auto_run_reexecution.event_log_consumer import EventLogConsumerDaemon
from dagster._daemon.controller import create_daemons_from_instance, daemon_controller_from_instance
from dagster._daemon.daemon import DagsterDaemon
from dagster._grpc.impl import core_execute_run
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClass
from dagster._serdes.config_class import ConfigurableClassData
from dagster._time import get_current_datetime, get_current_timestamp
from dagster._utils.error import SerializableErrorInfo
from dagster._utils.hosted_user_process import recon_job_from_origin
from dagster._utils.interrupts import capture_interrupts

__all__ = [
    "AUTO_RETRY_RUN_ID_TAG",
    "AssetCheckExecutionRecordStatus",
    "CheckRunHealthResult",
    "ConfigurableClass",
    "ConfigurableClassData",
    "DagsterDaemon",
    "EventLogConsumerDaemon",
    "ExecuteRunArgs",
    "IWorkspaceProcessContext",
    "InProcessCodeLocationOrigin",
    "InProcessWorkspaceLoadTarget",
    "JobFailureData",
    "LaunchRunContext",
    "LoadableTargetOrigin",
    "RunLauncher",
    "SerializableErrorInfo",
    "UnresolvedAssetJobDefinition",
    "WILL_RETRY_TAG",
    "WorkerStatus",
    "WorkspaceProcessContext",
    "capture_interrupts",
    "consume_new_runs_for_automatic_reexecution",
    "core_execute_run",
    "create_daemons_from_instance",
    "daemon_controller_from_instance",
    "get_current_datetime",
    "get_current_timestamp",
    "get_python_environment_entry_point",
    "recon_job_from_origin",
]
