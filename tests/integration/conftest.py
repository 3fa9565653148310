"""The dev stack (dev server and Postgres), started once per test session by `haul stack`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client

from app.core.migrate import migrate
from app.platform.client import HaulClient, connect
from app.platform.failures import FailureStore
from app.stack import cluster, targets
from app.stack.registry import ClusterRecord


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[ClusterRecord]:
    rec = cluster.up("it-dev", "dev", headless=True)
    migrate(rec.dsn())
    try:
        yield rec
    finally:
        cluster.down(rec.name, purge=True)


@pytest_asyncio.fixture(scope="session")
async def client(dev_cluster: ClusterRecord) -> AsyncIterator[Client]:
    target = targets.for_cluster(dev_cluster)
    yield await connect(
        target.profile,
        config_file=target.config_file,
        failure_store=FailureStore(dev_cluster.dsn()),
    )


@pytest.fixture
def haul_client(client: Client) -> HaulClient:
    return HaulClient(client)


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
