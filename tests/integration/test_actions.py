"""The shared action reader against a known workload."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.worker import Worker

from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.actions import ActionReader
from app.platform.client import HaulClient
from app.stack.cluster import app_namespace
from app.stack.registry import ClusterRecord
from tests.integration.patch_workflows import PatchedWorkflow, UnpatchedWorkflow
from tests.integration.workers import sample_worker


async def test_one_workflow_with_one_activity_counts_exactly(
    dev_cluster: ClusterRecord, client: Client, haul_client: HaulClient, task_queue: str
) -> None:
    reader = ActionReader(dev_cluster.metrics_url, app_namespace(dev_cluster))
    async with sample_worker(client, task_queue):
        baseline = await reader.measure_start()
        handle = await haul_client.start(
            GreetingWorkflow.run,
            GreetingInput(name="count"),
            uuid.uuid4().hex,
            task_queue=task_queue,
        )
        await handle.result()
        counted = await reader.measure_end(baseline)
    assert counted == {"command_ScheduleActivityTask": 1, "grpc_StartWorkflowExecution": 1}


async def test_a_patched_call_is_billed_as_one_batch_markers_action(
    dev_cluster: ClusterRecord, client: Client, task_queue: str
) -> None:
    """`patched()` records a marker (one command_BatchMarkers per workflow task that has one),
    and the SDK also upserts the TemporalChangeVersion search attribute the first time a run
    sees a patch ID: one command_UpsertWorkflowSearchAttributes more."""
    reader = ActionReader(dev_cluster.metrics_url, app_namespace(dev_cluster))
    async with Worker(
        client, task_queue=task_queue, workflows=[PatchedWorkflow, UnpatchedWorkflow]
    ):
        counted = {}
        for wf in (PatchedWorkflow, UnpatchedWorkflow):
            baseline = await reader.measure_start()
            result = await client.execute_workflow(
                wf.run, id=f"patch-{uuid.uuid4().hex}", task_queue=task_queue
            )
            assert result in ("new", "plain")
            counted[wf.__name__] = await reader.measure_end(baseline)
    assert counted["PatchedWorkflow"] == {
        "grpc_StartWorkflowExecution": 1,
        "command_BatchMarkers": 1,
        "command_UpsertWorkflowSearchAttributes": 1,
    }
    assert counted["UnpatchedWorkflow"] == {"grpc_StartWorkflowExecution": 1}
