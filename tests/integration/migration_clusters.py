"""Two dev clusters for a migration test module, and the migration state on a clean slate."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.core.database import Database
from app.core.migrate import migrate
from app.platform.migration_state import MigrationStore
from app.stack import cluster
from app.stack.registry import ClusterRecord


@contextmanager
def two_clusters(old: str, new: str) -> Iterator[dict[str, ClusterRecord]]:
    """Both dev clusters up (the app database is the old one's), and down with purge after."""
    recs: dict[str, ClusterRecord] = {}
    try:
        for name in (old, new):
            recs[name] = cluster.up(name, "dev", headless=True)
        migrate(recs[old].dsn())
        yield recs
    finally:
        for name in recs:
            cluster.down(name, purge=True)


@contextmanager
def clean_store(dsn: str) -> Iterator[MigrationStore]:
    """The state store with no migration row, no routers and no claims."""
    db = Database(dsn)
    with db.connect() as conn:
        conn.execute(
            "truncate cluster_migration, cluster_migration_history, cluster_routers, cluster_claims"
        )
    try:
        yield MigrationStore(db)
    finally:
        db.close()
