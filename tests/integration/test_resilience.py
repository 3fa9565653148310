"""Workflows survive a killed worker, a restarted server, and a SIGTERM mid-activity."""

from __future__ import annotations

import asyncio
import signal
import uuid

from temporalio.client import Client, WorkflowHandle

from app.core.procs import pid_alive, stop_pid
from app.domains.sample.models import GreetingInput, GreetingResult
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient
from app.stack import cluster
from app.stack.registry import ClusterRecord
from app.stack.workers import start_worker, stop_worker
from tests.integration.workers import sample_worker


async def wait_activity_started(handle: WorkflowHandle, timeout: float = 30) -> None:
    for _ in range(int(timeout / 0.1)):
        desc = await handle.describe()
        if desc.raw_description.pending_activities and any(
            a.last_started_time.seconds for a in desc.raw_description.pending_activities
        ):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"activity of {handle.id} never started")


async def swap_worker_mid_activity(
    dev_cluster: ClusterRecord, haul_client: HaulClient, name: str, sig: int
) -> GreetingResult:
    """Start a workflow on one worker process, stop that worker with `sig` while the activity
    runs, then let a fresh worker process finish the workflow; return its result."""
    pid = start_worker(dev_cluster, role="worker-first")
    try:
        handle = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name=name, work_seconds=3), uuid.uuid4().hex
        )
        await wait_activity_started(handle)
        stop_worker(dev_cluster, "worker-first", sig=sig)
        assert not pid_alive(pid)
        start_worker(dev_cluster, role="worker-second")
        try:
            result = await asyncio.wait_for(handle.result(), 90)
        finally:
            stop_worker(dev_cluster, "worker-second")
    finally:
        stop_worker(dev_cluster, "worker-first")
    return result


async def test_killed_worker_is_replaced_and_the_workflow_completes(
    dev_cluster: ClusterRecord, haul_client: HaulClient
) -> None:
    result = await swap_worker_mid_activity(dev_cluster, haul_client, "kill", signal.SIGKILL)
    assert result.greeting == "Hello, kill!"
    # The first attempt died with the worker; a retry on the replacement finished it.
    assert result.attempts >= 2


async def test_sigterm_lets_the_running_activity_finish(
    dev_cluster: ClusterRecord, haul_client: HaulClient
) -> None:
    result = await swap_worker_mid_activity(dev_cluster, haul_client, "drain", signal.SIGTERM)
    # The activity finished within the grace period, so it was never retried; the second
    # worker only completed the workflow.
    assert result == GreetingResult(greeting="Hello, drain!", attempts=1)


async def test_restarted_dev_server_keeps_the_workflow(
    dev_cluster: ClusterRecord, client: Client, haul_client: HaulClient, task_queue: str
) -> None:
    async with sample_worker(client, task_queue):
        handle = await haul_client.start(
            GreetingWorkflow.run,
            GreetingInput(name="restart", work_seconds=3),
            uuid.uuid4().hex,
            task_queue=task_queue,
        )
        await wait_activity_started(handle)
        stop_pid(dev_cluster.pids["temporal"])
        rec = await asyncio.to_thread(cluster.up, dev_cluster.name, "dev", headless=True)
        dev_cluster.pids.update(rec.pids)
        result = await asyncio.wait_for(handle.result(), 90)
    assert result.greeting == "Hello, restart!"
