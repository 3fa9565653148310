"""Deterministic IDs and task policies: duplicates join, failures redrive, successes stay done."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import Client, WorkflowFailureError

from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient
from app.platform.history import run_ids
from tests.integration.workers import sample_worker


async def test_duplicate_start_gives_one_run(
    client: Client, haul_client: HaulClient, task_queue: str
) -> None:
    ident = f"dup-{uuid.uuid4().hex[:8]}"
    async with sample_worker(client, task_queue):
        first = await haul_client.start(
            GreetingWorkflow.run,
            GreetingInput(name="a", work_seconds=1),
            ident,
            task_queue=task_queue,
        )
        second = await haul_client.start(
            GreetingWorkflow.run,
            GreetingInput(name="a", work_seconds=1),
            ident,
            task_queue=task_queue,
        )
        assert second.result_run_id == first.result_run_id
        await first.result()
        # After success, a start joins nothing and starts nothing: the finished task stays done.
        with pytest.raises(Exception, match="already"):
            await haul_client.start(
                GreetingWorkflow.run, GreetingInput(name="a"), ident, task_queue=task_queue
            )
    assert len(await run_ids(client, first.id)) == 1


async def test_start_after_failure_gives_a_new_run(
    client: Client, haul_client: HaulClient, task_queue: str
) -> None:
    ident = f"redrive-{uuid.uuid4().hex[:8]}"
    async with sample_worker(client, task_queue):
        failed = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name="b", fail=True), ident, task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError):
            await failed.result()
        redriven = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name="b"), ident, task_queue=task_queue
        )
        assert redriven.result_run_id != failed.result_run_id
        result = await redriven.result()
    assert result.greeting == "Hello, b!"
