"""Which stores a process's budget uses, in order, and at which share of each limit.

- REDIS_URL: the shared budget lives in this Redis (it wins over PostgreSQL).
- DATABASE_URL: a postgresql:// warehouse holds the shared budget (table `provider_budget`).
- VOLARIS_BUDGET_FILE: the host's SQLite file; default budget.db beside the SQLite warehouse
  file, else in DAGSTER_HOME, else data/budget.db.
- VOLARIS_BUDGET_HOSTS (default 1): hosts that may ingest from one provider account at once.
- VOLARIS_BUDGET_PROCESSES (default 6): processes per host that may ingest at once (the
  production deployment's four concurrent runs, the retry sensor and the doctor).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from volaris_assets.providers.budget.fallback import MemoryStore, Tier
from volaris_assets.providers.budget.postgres import PostgresStore
from volaris_assets.providers.budget.sqlite import SqliteStore
from volaris_assets.providers.budget.store import Store
from volaris_assets.warehouse.urls import DEFAULT_SQLITE_PATH, normalize_url, sqlite_path

BUDGET_FILE_NAME = "budget.db"


@dataclass(frozen=True)
class BudgetConfig:
    """Where the budget lives and how a fallback shares it (see the package docstring).

    `timeout_s` bounds one call to a store (connect, lock wait, statement) before it counts as
    down; `retry_shared_s` is how long a store that failed is left alone before it is tried
    again; `bulk_slack_s` is the backlog, in seconds of budget, below which bulk work may
    reserve.
    """

    redis_url: str | None = None
    database_url: str | None = None
    sqlite_file: Path = DEFAULT_SQLITE_PATH.with_name(BUDGET_FILE_NAME)
    hosts: int = 1
    processes: int = 6
    bulk_slack_s: float = 1.0
    timeout_s: float = 2.0
    retry_shared_s: float = 15.0
    table: str = "provider_budget"
    redis_prefix: str = "volaris-budget"

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.processes < 1:
            raise ValueError("VOLARIS_BUDGET_HOSTS and VOLARIS_BUDGET_PROCESSES must be >= 1")
        if min(self.bulk_slack_s, self.timeout_s, self.retry_shared_s) < 0:
            raise ValueError("budget timings must be >= 0")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> BudgetConfig:
        """The configuration the environment describes (blank variables count as unset)."""

        def value(name: str) -> str | None:
            return (environ.get(name) or "").strip() or None

        def count(name: str, default: int) -> int:
            text = value(name)
            try:
                return int(text) if text is not None else default
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {text!r}") from None

        database_url = value("DATABASE_URL")
        warehouse_file = sqlite_path(normalize_url(database_url))
        budget_file = value("VOLARIS_BUDGET_FILE")
        dagster_home = value("DAGSTER_HOME")
        if budget_file:
            sqlite_file = Path(budget_file)
        elif warehouse_file:
            sqlite_file = warehouse_file.with_name(BUDGET_FILE_NAME)
        elif dagster_home:
            # Every process of a deployment shares DAGSTER_HOME; a path relative to the working
            # directory gave a daemon and runs started from different folders different files.
            sqlite_file = Path(dagster_home) / BUDGET_FILE_NAME
        else:
            sqlite_file = cls.sqlite_file
        return cls(
            redis_url=value("REDIS_URL"),
            database_url=database_url,
            sqlite_file=sqlite_file,
            hosts=count("VOLARIS_BUDGET_HOSTS", cls.hosts),
            processes=count("VOLARIS_BUDGET_PROCESSES", cls.processes),
        )

    def tiers(self) -> list[Tier]:
        """The stores in the order they are tried, each with its share of every limit."""
        host_share = 1.0 / self.hosts
        host_file = Tier(SqliteStore(self.sqlite_file, timeout_s=self.timeout_s), host_share, False)
        memory = Tier(MemoryStore(), host_share / self.processes, False)
        shared = self._shared_store()
        if shared is None:
            host_file.shared = True
            return [host_file, memory]
        return [Tier(shared, 1.0, True), host_file, memory]

    def _shared_store(self) -> Store | None:
        """The store every host reaches: Redis when configured, else a PostgreSQL warehouse."""
        if self.redis_url:
            # Imported here: a deployment without Redis never loads its client.
            from volaris_assets.providers.budget.redis import RedisStore

            return RedisStore(self.redis_url, prefix=self.redis_prefix, timeout_s=self.timeout_s)
        if self.database_url:
            url = normalize_url(self.database_url)
            if sa.make_url(url).get_backend_name() == "postgresql":
                return PostgresStore(url, table=self.table, timeout_s=self.timeout_s)
        return None
