"""The code location of the cluster layout: every domain, its steps run by Celery workers.

Point the webserver, the daemon and `dagster asset materialize` at this module instead of
`volaris_assets.definitions`; the assets, resources, schedules and sensors are the same ones.
"""

from dagster_celery import celery_executor

from volaris_assets.cluster.celery_config import executor_config
from volaris_assets.definitions import location

defs = location(celery_executor.configured(executor_config(), name="volaris_celery"))
