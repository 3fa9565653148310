"""The shared action reader against a known workload."""

from __future__ import annotations

import uuid

from temporalio.client import Client

from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.actions import ActionReader
from app.platform.client import HaulClient
from app.stack.cluster import app_namespace
from app.stack.registry import ClusterRecord
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
