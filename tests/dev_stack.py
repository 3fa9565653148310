"""One dev cluster (dev server and Postgres, migrated) per test session, for the integration
and browser tiers: each conftest names its cluster and takes it from here."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from temporalio.client import Client

from app.core.migrate import migrate
from app.platform.client import connect
from app.stack import cluster, targets
from app.stack.registry import ClusterRecord


@contextmanager
def dev_cluster(name: str) -> Iterator[ClusterRecord]:
    """`haul stack up --backend dev` under `name`, its app database migrated; down with purge
    after, even when the migration fails."""
    rec = cluster.up(name, "dev", headless=True)
    try:
        migrate(rec.dsn())
        yield rec
    finally:
        cluster.down(rec.name, purge=True)


async def dev_client(rec: ClusterRecord, **options: Any) -> Client:
    """A client of the cluster through its envconfig profile, as every haul process gets one."""
    target = targets.for_cluster(rec)
    return await connect(target.profile, config_file=target.config_file, **options)
