"""The cluster layout: Dagster's Celery executor on RabbitMQ, steps run by workers on N hosts.

`definitions.py` is the code location (every domain, the Celery executor), `worker.py` the
Celery app the workers run, `celery_config.py` what both agree on, `queues.py` the routing tags,
`pools.py` the one-time creation of the pools' rows before parallel runs.
deploy/cluster/README.md says how to run it and why the work splits as it does.

Needs the `cluster` extra (`pip install 'volaris-assets[cluster]'`): dagster-celery and Celery.
"""
