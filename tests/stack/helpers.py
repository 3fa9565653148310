"""Shared steps of the stack tests: the sample workload, and killing temporal-server mid-run."""

from __future__ import annotations

import asyncio
import signal

from temporalio.client import WorkflowHandle

from app.core.procs import pid_alive, stop_pid
from app.domains.sample.models import GreetingInput
from app.domains.sample.starter import run_sample
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient
from app.stack import cluster
from app.stack.registry import ClusterRecord, Registry


async def sample_run(client: HaulClient, name: str) -> dict[str, str]:
    """Run the sample workload (a greeting and a ten-event entity); return {kind: workflow ID}."""
    rows = await asyncio.wait_for(run_sample(client, [name]), timeout=180)
    by_kind = {kind: (wid, result) for wid, kind, result in rows}
    assert by_kind["greeting"][1] == f"Hello, {name}!"
    assert by_kind["entity"][1] == "processed 10 events"
    return {kind: wid for kind, (wid, _) in by_kind.items()}


async def run_id_of(client: HaulClient, workflow_id: str) -> str:
    desc = await client.client.get_workflow_handle(workflow_id).describe()
    return desc.run_id


async def kill_server_mid_run(rec: ClusterRecord, client: HaulClient, tag: str) -> None:
    """Start slow greetings, SIGKILL temporal-server while their activities run, restart it
    with `cluster.up`, and require every workflow to complete."""
    handles: list[WorkflowHandle] = [
        await client.start(
            GreetingWorkflow.run, GreetingInput(name=f"{tag}-{i}", work_seconds=3.0), f"{tag}-{i}"
        )
        for i in range(5)
    ]
    # Wait until every activity is running, so the kill lands mid-activity.
    for _ in range(150):
        descs = [await h.describe() for h in handles]
        if all(d.raw_description.pending_activities for d in descs):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError("the slow activities never started; is the worker running?")
    old = Registry().get(rec.name)
    assert old is not None
    old_pid = old.pids["temporal"]
    stop_pid(old_pid, timeout=0, sig=signal.SIGKILL)
    assert not pid_alive(old_pid)
    restarted = await asyncio.to_thread(cluster.up, rec.name, rec.backend, timeout=180)
    assert restarted.pids["temporal"] != old_pid
    assert pid_alive(restarted.pids["temporal"])
    results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=180)
    assert sorted(r.greeting for r in results) == sorted(f"Hello, {tag}-{i}!" for i in range(5))
