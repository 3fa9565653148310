"""The dev stack (dev server and Postgres), started once per test session by `haul stack`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client

from app.platform.client import HaulClient
from app.platform.failures import FailureStore
from app.stack.registry import ClusterRecord
from tests import dev_stack

# The two-cluster migration fixtures, for the modules that name their clusters OLD and NEW.
from tests.integration.migration_clusters import records, store, worker  # noqa: F401


@pytest.fixture(scope="session")
def dev_cluster() -> Iterator[ClusterRecord]:
    with dev_stack.dev_cluster("it-dev") as rec:
        yield rec


@pytest_asyncio.fixture(scope="session")
async def client(dev_cluster: ClusterRecord) -> AsyncIterator[Client]:
    yield await dev_stack.dev_client(dev_cluster, failure_store=FailureStore(dev_cluster.dsn()))


@pytest.fixture
def haul_client(client: Client) -> HaulClient:
    return HaulClient(client)


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"
