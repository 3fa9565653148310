"""The stack tier: real temporal-server on Postgres and on Cassandra, booted by `haul stack`.

Each backend boots once per test run (session fixtures) and is purged at the end, which stops
every process it started by pid. Cluster names start with `st-`, so they never meet the
integration tier's `it-dev`. Built binaries and jars come from the user cache dir (HAUL_CACHE);
the first run on a machine builds them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client

from app.core.settings import Settings
from app.domains.sample import DOMAIN
from app.platform.client import HaulClient, connect
from app.platform.discovery import discover
from app.platform.worker import build_workers
from app.stack import cluster, targets
from app.stack.registry import ClusterRecord, Registry

PG = "st-pg"
CS = "st-cs"


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[ClusterRecord]:
    rec = cluster.up(PG, "postgres", timeout=180)
    try:
        yield rec
    finally:
        cluster.down(PG, purge=True)


@pytest.fixture(scope="session")
def cs_cluster() -> Iterator[ClusterRecord]:
    # `--tls`, as production Scylla runs: CQL only over TLS with a client certificate from the
    # cluster CA, so every Cassandra test goes through the certificate path (one boot).
    try:
        yield cluster.up(CS, "cassandra", tls=True, timeout=180)
    finally:
        # Also after a failed boot: Cassandra may be up when a later step fails.
        if Registry().get(CS) is not None:
            cluster.down(CS, purge=True)


@asynccontextmanager
async def sample_workers(rec: ClusterRecord) -> AsyncIterator[Client]:
    """A client for the cluster and in-process workers on the sample task queue."""
    target = targets.for_cluster(rec)
    client = await connect(target.profile, config_file=target.config_file)
    settings = Settings(database_url=rec.dsn(), graceful_shutdown_seconds=5)
    workers = build_workers(client, discover(["app.domains.sample"]), settings, [DOMAIN.task_queue])
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield client
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)


# Per module, not per session: the rehearsal (test_rehearsal.py) serves these clusters with a
# `haul worker` of its own that follows the migration state, and in-process workers that do
# not would take its tasks (and refuse its handoffs).
@pytest_asyncio.fixture(scope="module")
async def pg_client(pg_cluster: ClusterRecord) -> AsyncIterator[HaulClient]:
    async with sample_workers(pg_cluster) as client:
        yield HaulClient(client)


@pytest_asyncio.fixture(scope="module")
async def cs_client(cs_cluster: ClusterRecord) -> AsyncIterator[HaulClient]:
    async with sample_workers(cs_cluster) as client:
        yield HaulClient(client)


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


RESULT_TIMEOUT = timedelta(minutes=3).total_seconds()
