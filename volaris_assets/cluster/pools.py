"""`python -m volaris_assets.cluster.pools`: create every pool's concurrency row once, before runs
start in parallel (after each deploy that adds a pool; running it again changes nothing).

With PostgreSQL storage, the first steps of a pool that start at the same moment each create the
pool's row at its default limit, and all but one fail with a unique violation on
`concurrency_limits_concurrency_key_key` (dagster 1.13.27, `initialize_concurrency_limit_to_default`
catches the IntegrityError inside the transaction PostgreSQL has already aborted, so the same
call on an existing row fails too). Seen here with three backfill runs of option_chains started
at once. Created one at a time, and only where missing, nothing races.
"""

from __future__ import annotations

import dagster as dg


def pools(defs: dg.Definitions) -> list[str]:
    """The pools the code location's assets run in."""
    found = {
        pool
        for assets_def in defs.resolve_asset_graph().assets_defs
        if (pool := getattr(assets_def.node_def, "pool", None))
    }
    return sorted(found)


def initialize(instance: dg.DagsterInstance, names: list[str]) -> None:
    """Give each pool without a row one at the instance's `concurrency.pools.default_limit`."""
    storage = instance.event_log_storage
    existing = storage.get_concurrency_keys()
    for name in names:
        if name not in existing and not storage.initialize_concurrency_limit_to_default(name):
            raise RuntimeError(
                f"pool {name!r} was not created: the instance has no pool support "
                "(deploy/cluster/dagster.yaml's PostgreSQL storage has)"
            )


def main() -> None:
    from volaris_assets.definitions import defs

    names = pools(defs)
    with dg.DagsterInstance.get() as instance:
        initialize(instance, names)
        for name in names:
            print(f"{name}: {instance.event_log_storage.get_concurrency_info(name).slot_count}")


if __name__ == "__main__":
    main()
