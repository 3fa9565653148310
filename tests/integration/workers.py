"""In-process sample workers on a fresh task queue, one per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from app.core.settings import Settings
from app.domains.sample.activities import SampleActivities
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.worker import WorkerContext


@asynccontextmanager
async def sample_worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    acts = SampleActivities(WorkerContext(Settings(), HaulClient(client)))
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[GreetingWorkflow, LedgerEntityWorkflow],
        activities=[acts.compose_greeting, acts.process_ledger_batch],
        graceful_shutdown_timeout=timedelta(seconds=5),
    )
    async with worker:
        yield worker
