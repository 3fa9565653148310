"""Reading the failure inbox from tests: poll until a workflow's failure is recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client

from app.platform.failure_poller import Poller
from app.platform.failures import FailureFilter, FailureStore, StoredFailure


async def recorded_failures(
    client: Client, dsn: str, workflow_id: str, deadline: float = 60.0
) -> list[StoredFailure]:
    """Every record of `workflow_id`, once the poller has found at least one; fails after
    `deadline` seconds (the failure inbox records what visibility lists as closed)."""
    store = FailureStore(dsn)
    poller = Poller(client, store, cluster="it-dev", overlap=timedelta(minutes=2))
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        await poller.poll_once()
        found = [
            f
            for f in store.list(FailureFilter(status=None), limit=100_000)
            if f.workflow_id == workflow_id
        ]
        if found:
            return sorted(found, key=lambda f: f.id)
        if loop.time() > end:
            raise AssertionError(f"no failure of {workflow_id} recorded within {deadline}s")
        await asyncio.sleep(0.5)
