"""`volaris-daemon`: Dagster's daemon with the code location loaded in its own process.

`dagster-daemon run` always reaches code through a gRPC code server (one it starts, or one named
in the workspace): a second long-lived Python process importing Dagster, pandas and this
project, ~190 MB on its own. On the 512 MB box that process is the difference between fitting and
not (bench/bench_footprint.py), so this entry point runs the same daemon controller with the
code location in-process: schedules, sensors and the run queue evaluate against the imported
`Definitions`, and runs start in processes of their own through `LocalProcessRunLauncher`
(which deploy/small-box/dagster.yaml configures; Dagster's default launcher needs a gRPC server).

The price is what the gRPC boundary buys elsewhere: a code change needs a daemon restart, and a
sensor that crashes the interpreter takes the daemon with it (systemd's `Restart=always` is the
answer on a small box). Larger deployments keep `dagster-daemon run` and a code server
(deploy/production).
"""

from __future__ import annotations

import argparse
import os
import sys

from dagster import DagsterInstance

from volaris_assets.dagster_internals import (
    InProcessCodeLocationOrigin,
    InProcessWorkspaceLoadTarget,
    LoadableTargetOrigin,
    capture_interrupts,
    daemon_controller_from_instance,
)
from volaris_assets.small_box import light_lane
from volaris_assets.small_box.malloc import tune_malloc
from volaris_assets.small_box.retries import small_box_daemons

LOCATION_NAME = "volaris_assets"
MODULE = "volaris_assets.definitions"


def in_process_location() -> InProcessWorkspaceLoadTarget:
    """The project's code location, named as the gRPC and `python_module` workspaces name it,
    so runs queued by a web UI that loaded the code its own way find it here."""
    origin = LoadableTargetOrigin(
        executable_path=sys.executable,
        module_name=MODULE,
        attribute="defs",
        working_directory=os.getcwd(),
    )
    return InProcessWorkspaceLoadTarget(
        InProcessCodeLocationOrigin(origin, location_name=LOCATION_NAME)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default="info", help="the daemon's log level")
    args = parser.parse_args(argv)
    tune_malloc()
    light_lane.host_here()
    try:
        with capture_interrupts(), DagsterInstance.get() as instance:
            with daemon_controller_from_instance(
                instance,
                workspace_load_target=in_process_location(),
                gen_daemons=small_box_daemons,
                log_level=args.log_level,
            ) as controller:
                controller.check_daemon_loop()
    except KeyboardInterrupt:
        return  # SIGINT/SIGTERM: the controller has stopped its daemons on the way out


if __name__ == "__main__":
    main()
