"""Every terminal failure or timeout lands in the failure store, and can be redriven."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client, WorkflowFailureError

from app.core.settings import Settings
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient
from app.platform.discovery import discover
from app.platform.failures import FailureStore, redrive, sweep
from app.platform.worker import build_workers
from app.stack.registry import ClusterRecord


@pytest.fixture
def store(dev_cluster: ClusterRecord) -> FailureStore:
    return FailureStore(dev_cluster.dsn())


async def test_a_failed_workflow_is_stored_with_its_arguments_and_redriven(
    client: Client, haul_client: HaulClient, store: FailureStore, dev_cluster: ClusterRecord
) -> None:
    [worker] = build_workers(
        client, discover(), Settings(database_url=dev_cluster.dsn()), ["sample"]
    )
    ident = f"fail-{uuid.uuid4().hex[:8]}"
    async with worker:
        handle = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name="broken", fail=True), ident
        )
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        [failure] = [f for f in store.list() if f.workflow_id == handle.id]
        assert failure.run_id == handle.result_run_id
        assert failure.workflow_type == "GreetingWorkflow"
        assert failure.arguments == [{"name": "broken", "work_seconds": 0.0, "fail": True}]
        assert failure.error_type == "SampleFailure"
        assert "asked to fail" in failure.error_message

        # Redrive runs the same arguments again; this one fails again and is stored again.
        run_id = await redrive(haul_client.router, store, failure.id)
        assert run_id != handle.result_run_id
        with pytest.raises(WorkflowFailureError):
            await client.get_workflow_handle(handle.id, run_id=run_id).result()
        with pytest.raises(ValueError, match="already redriven"):
            await redrive(haul_client.router, store, failure.id)
    runs = {f.run_id for f in store.list(open_only=False) if f.workflow_id == handle.id}
    assert runs == {handle.result_run_id, run_id}


async def test_a_timed_out_workflow_is_swept_into_the_store(
    client: Client, haul_client: HaulClient, store: FailureStore
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=5)
    ident = f"timeout-{uuid.uuid4().hex[:8]}"
    # No worker serves this queue, so the run times out.
    handle = await haul_client.start(
        GreetingWorkflow.run,
        GreetingInput(name="late"),
        ident,
        task_queue=f"nobody-{ident}",
        execution_timeout=timedelta(seconds=1),
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    for _ in range(50):
        await sweep(client, store, since)
        found = [f for f in store.list() if f.workflow_id == handle.id]
        if found:
            break
        await asyncio.sleep(0.2)
    assert [(f.error_type, f.arguments[0]["name"]) for f in found] == [("TIMED_OUT", "late")]
