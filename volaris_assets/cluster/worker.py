"""The Celery app every worker runs: `celery -A volaris_assets.cluster.worker worker -Q ...`.

dagster-celery's own `dagster-celery worker start -y config.yaml` writes the resolved broker
URL, password included, into a file under DAGSTER_HOME; this module builds the same app (same
task, same settings as the executor) from the environment instead. A worker needs the project
installed, the environment of the run hosts (DATABASE_URL, DAGSTER_PG_*, provider keys) and
DAGSTER_HOME pointing at the same instance configuration; it imports the code location lazily,
when its first step arrives.
"""

from __future__ import annotations

from dagster_celery.executor import CeleryExecutor
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task

from volaris_assets import settings
from volaris_assets.cluster.celery_config import CONFIG_SOURCE, backend_url, broker_url

# Every variable checked before connecting: a mistyped one is named (its secret redacted) here,
# not discovered by the first step.
settings.load()
app = make_app(
    CeleryExecutor.for_cli(
        broker=broker_url(), backend=backend_url(), config_source=CONFIG_SOURCE
    ).app_args()
)
execute_plan = create_task(app)
