"""The Celery queues steps are routed to, by kind of work, as op tags on the assets.

The tags mean nothing to the single-box and small-box layouts (their executors ignore them);
under the cluster layout (`volaris_assets.cluster.definitions`) the Celery executor sends each
step to its tag's queue, and a worker takes only the queues it was started with, so a host can
be sized for the work it does: many slots for provider-bound fetches (they wait on the network
and on the shared provider budget, not on a core), one slot per core for CPU-bound compute.
Steps without a tag (asset checks, the universe assets) go to Celery's default queue `dagster`.

No import of Celery here: the domain modules import these constants, and a single-box install
has no Celery.
"""

from __future__ import annotations

# dagster_celery.tags.DAGSTER_CELERY_QUEUE_TAG (kept literal: see the module docstring).
QUEUE_TAG = "dagster-celery/queue"
# Provider-bound: per-symbol fetches whose pace is the provider budget's.
FETCH_QUEUE = "volaris-fetch"
# CPU-bound: implied-volatility solving and metrics over stored chains.
COMPUTE_QUEUE = "volaris-compute"
# What dagster-celery's app declares for untagged steps.
DEFAULT_QUEUE = "dagster"
QUEUES = (FETCH_QUEUE, COMPUTE_QUEUE, DEFAULT_QUEUE)

FETCH = {QUEUE_TAG: FETCH_QUEUE}
COMPUTE = {QUEUE_TAG: COMPUTE_QUEUE}
