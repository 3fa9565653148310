"""The migration benchmarks' starting point: a migrated app database with no migration, router,
claim or handoff in it, and a client per cluster from the stack's profiles."""

from __future__ import annotations

from collections.abc import Iterable

from temporalio.client import Client

from app.core.database import Database
from app.core.migrate import migrate
from app.platform.client import connect
from app.platform.migration_state import MigrationStore
from app.stack.registry import Registry


def fresh_store(dsn: str) -> MigrationStore:
    """The state store of `dsn`, migrated and emptied (a bench re-run starts from `single`)."""
    migrate(dsn)
    db = Database(dsn)
    with db.connect() as conn:
        conn.execute(
            "truncate cluster_migration, cluster_migration_history, cluster_routers, "
            "cluster_claims, workflow_handoffs"
        )
    return MigrationStore(db)


async def cluster_clients(names: Iterable[str]) -> dict[str, Client]:
    profiles = str(Registry().profile_file)
    return {n: await connect(n, config_file=profiles) for n in names}
