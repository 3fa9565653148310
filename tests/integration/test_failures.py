"""The failure inbox on the dev stack: nothing missed, nothing twice, and redrive."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.worker import Replayer, Worker

from app.core.procs import stop_pid
from app.core.settings import Settings
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow
from app.platform.client import HaulClient, connect
from app.platform.discovery import discover
from app.platform.failure_poller import Poller
from app.platform.failures import FailureFilter, FailureStore, StoredFailure
from app.platform.plugin import HaulPlugin
from app.platform.redrive import follow_redrives, redrive
from app.platform.worker import build_workers
from app.stack import cluster, targets
from app.stack.registry import ClusterRecord
from tests.integration.failure_workflows import (
    FAILURE_WORKFLOWS,
    FailingWorkflow,
    FailInput,
    FixedFailingWorkflow,
    ParentWorkflow,
)


@pytest.fixture
def store(dev_cluster: ClusterRecord) -> FailureStore:
    return FailureStore(dev_cluster.dsn())


@pytest.fixture
def poller(client: Client, store: FailureStore) -> Poller:
    # A short overlap keeps each pass small; the key makes overlapping passes harmless anyway.
    return Poller(client, store, cluster="it-dev", overlap=timedelta(minutes=2))


@asynccontextmanager
async def failing_worker(client: Client, task_queue: str) -> AsyncIterator[Worker]:
    async with Worker(client, task_queue=task_queue, workflows=FAILURE_WORKFLOWS) as worker:
        yield worker


def records(store: FailureStore, workflow_id: str) -> list[StoredFailure]:
    everything = store.list(FailureFilter(status=None), limit=100_000)
    return sorted((f for f in everything if f.workflow_id == workflow_id), key=lambda f: f.id)


async def poll_until(
    poller: Poller, found: Callable[[], Awaitable[bool] | bool], deadline: float = 60
) -> None:
    """Poll until `found()` holds, or fail after `deadline` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        await poller.poll_once()
        ok = found()
        if (await ok) if isinstance(ok, Awaitable) else ok:
            return
        if loop.time() > end:
            raise AssertionError(f"condition not met within {deadline}s of polling")
        await asyncio.sleep(0.5)


async def failed(handle: WorkflowHandle[Any, Any]) -> None:
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 60)


async def test_a_retried_workflow_is_recorded_once_with_its_arguments(
    client: Client, store: FailureStore, poller: Poller, task_queue: str
) -> None:
    async with failing_worker(client, task_queue):
        handle = await client.start_workflow(
            FailingWorkflow.run,
            FailInput("order 1234 broke"),
            id=uuid.uuid4().hex,
            task_queue=task_queue,
            retry_policy=RetryPolicy(
                maximum_attempts=3, initial_interval=timedelta(milliseconds=100)
            ),
        )
        await failed(handle)
    await poll_until(poller, lambda: bool(records(store, handle.id)))
    await poller.poll_once()
    got = records(store, handle.id)
    assert [(r.close_status, r.attempt) for r in got] == [("Failed", 3)]
    [rec] = got
    assert rec.error_type == "TestFailure"
    assert rec.run_id == (await handle.describe()).run_id
    assert rec.arguments == [
        {"message": "order 1234 broke", "error_type": "TestFailure", "plain": False, "signals": 0}
    ]
    assert "order 1234 broke" in rec.error_message and rec.failure_stack


async def test_a_workflow_stuck_on_a_python_exception_shows_up_as_stuck(
    client: Client, store: FailureStore, poller: Poller, task_queue: str
) -> None:
    async with failing_worker(client, task_queue):
        handle = await client.start_workflow(
            FailingWorkflow.run,
            FailInput("bug in code", plain=True),
            id=uuid.uuid4().hex,
            task_queue=task_queue,
        )
        await poll_until(poller, lambda: bool(records(store, handle.id)), deadline=120)
        [rec] = records(store, handle.id)
        assert (rec.close_status, rec.error_type) == ("Stuck", "RuntimeError")
        assert "bug in code" in rec.error_message and rec.failure_stack
        # Once it closes, the same record turns from stuck to its close status.
        await handle.terminate("stuck for good")
        await poll_until(
            poller, lambda: [r.close_status for r in records(store, handle.id)] == ["Terminated"]
        )


async def test_a_child_failure_is_recorded_with_its_parent(
    client: Client, store: FailureStore, poller: Poller, task_queue: str
) -> None:
    async with failing_worker(client, task_queue):
        parent = await client.start_workflow(
            ParentWorkflow.run, FailInput("child broke"), id=uuid.uuid4().hex, task_queue=task_queue
        )
        await failed(parent)
    child_id = f"{parent.id}-child"
    await poll_until(poller, lambda: bool(records(store, child_id) and records(store, parent.id)))
    [child] = records(store, child_id)
    assert child.parent_workflow_id == parent.id
    assert child.parent_run_id == (await parent.describe()).run_id


async def test_with_the_database_down_a_failure_is_on_time_and_recorded_later(
    dev_cluster: ClusterRecord,
    client: Client,
    store: FailureStore,
    poller: Poller,
    task_queue: str,
) -> None:
    stop_pid(dev_cluster.pids["postgres"])
    try:
        async with failing_worker(client, task_queue):
            handle = await client.start_workflow(
                FailingWorkflow.run,
                FailInput("db down"),
                id=uuid.uuid4().hex,
                task_queue=task_queue,
            )
            await failed(handle)  # within the deadline: nothing holds it open
            with pytest.raises(Exception, match="(?i)connect"):
                await poller.poll_once()
    finally:
        rec = await asyncio.to_thread(cluster.up, dev_cluster.name, "dev", headless=True)
        dev_cluster.pids.update(rec.pids)
    await poll_until(poller, lambda: len(records(store, handle.id)) == 1)


async def test_a_failure_on_a_worker_without_a_database_is_not_lost(
    dev_cluster: ClusterRecord, store: FailureStore, poller: Poller, task_queue: str
) -> None:
    target = targets.for_cluster(dev_cluster)
    bare = await connect(target.profile, config_file=target.config_file)
    async with failing_worker(bare, task_queue):
        handle = await bare.start_workflow(
            FailingWorkflow.run, FailInput("no db"), id=uuid.uuid4().hex, task_queue=task_queue
        )
        await failed(handle)
    await poll_until(poller, lambda: len(records(store, handle.id)) == 1)


async def test_timed_out_and_terminated_runs_are_found_once_across_passes_and_a_restart(
    client: Client, haul_client: HaulClient, store: FailureStore, task_queue: str
) -> None:
    ident = uuid.uuid4().hex[:8]
    timed_out = await haul_client.start(
        GreetingWorkflow.run,
        GreetingInput(name="late"),
        f"to-{ident}",
        task_queue=f"nobody-{ident}",
        execution_timeout=timedelta(seconds=1),
    )
    terminated = await haul_client.start(
        GreetingWorkflow.run, GreetingInput(name="cut"), f"tx-{ident}", task_queue=f"nobody-{ident}"
    )
    await terminated.terminate(reason="operator stopped it")
    with pytest.raises(WorkflowFailureError):
        await timed_out.result()
    first = Poller(client, store, cluster="it-dev", overlap=timedelta(minutes=2))
    await poll_until(
        first, lambda: bool(records(store, timed_out.id) and records(store, terminated.id))
    )
    await first.poll_once()
    restarted = Poller(client, store, cluster="it-dev", overlap=timedelta(minutes=2))
    await restarted.poll_once()
    got = [
        (r.close_status, r.arguments[0]["name"])
        for r in records(store, timed_out.id) + records(store, terminated.id)
    ]
    assert got == [("TimedOut", "late"), ("Terminated", "cut")]
    assert "operator stopped it" in records(store, terminated.id)[0].error_message


async def test_two_hundred_failures_with_three_causes_are_three_groups(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    causes = [
        "invoice {n} has no carrier",
        "rate for zone {n} missing: 'acct-{n}x'",
        "timeout calling carrier api after {n} ms",
    ]
    batch = uuid.uuid4().hex[:8]
    async with failing_worker(client, task_queue):
        handles = await asyncio.gather(
            *(
                client.start_workflow(
                    FailingWorkflow.run,
                    FailInput(causes[i % 3].format(n=1000 + i), error_type=f"Cause{i % 3}"),
                    id=f"grp-{batch}-{i}",
                    task_queue=task_queue,
                )
                for i in range(200)
            )
        )
        for h in handles:
            await failed(h)
    poller = Poller(client, store, cluster="it-dev", overlap=timedelta(minutes=2))
    ours = FailureFilter(status=None, task_queue=task_queue)
    await poll_until(poller, lambda: store.count(ours) == 200, deadline=120)
    groups = store.summary(ours)
    assert sorted(g.count for g in groups) == [66, 67, 67]
    assert sorted(g.error_type for g in groups) == ["Cause0", "Cause1", "Cause2"]


async def test_a_redrive_after_a_fix_succeeds_and_is_linked(
    client: Client, store: FailureStore, poller: Poller, task_queue: str
) -> None:
    async with failing_worker(client, task_queue):
        handle = await client.start_workflow(
            FailingWorkflow.run, FailInput("bad rate"), id=uuid.uuid4().hex, task_queue=task_queue
        )
        await failed(handle)
    await poll_until(poller, lambda: bool(records(store, handle.id)))
    [rec] = records(store, handle.id)
    async with Worker(client, task_queue=task_queue, workflows=[FixedFailingWorkflow]):
        run_id = await redrive(HaulClient(client).router, store, rec.id)
        assert run_id != rec.run_id
        result = await client.get_workflow_handle(handle.id, run_id=run_id).result()
    assert result == "fixed: bad rate"
    await follow_redrives(client, store)
    [link] = store.redrives(rec.id)
    assert (link.new_run_id, link.outcome) == (run_id, "Completed")
    with pytest.raises(ValueError, match="already redriven"):
        await redrive(HaulClient(client).router, store, rec.id)


async def test_a_domain_failure_carries_its_team_and_the_result_is_unchanged(
    client: Client,
    haul_client: HaulClient,
    store: FailureStore,
    poller: Poller,
    dev_cluster: ClusterRecord,
) -> None:
    settings = Settings(database_url=dev_cluster.dsn())
    [worker] = build_workers(client, discover(), settings, ["sample"])
    async with worker:
        ok = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name="fine"), uuid.uuid4().hex
        )
        assert (await ok.result()).greeting == "Hello, fine!"
        bad = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name="broken", fail=True), uuid.uuid4().hex
        )
        with pytest.raises(WorkflowFailureError) as err:
            await bad.result()
    # The outcome is the activity's own failure, untouched by the interceptor.
    assert "asked to fail" in str(err.value.cause.__cause__)
    await poll_until(poller, lambda: bool(records(store, bad.id)))
    [rec] = records(store, bad.id)
    assert (rec.owner_team, rec.error_type) == ("platform", "SampleFailure")


async def test_replayer_replays_a_failure_history_made_with_the_interceptor(
    client: Client, haul_client: HaulClient, dev_cluster: ClusterRecord
) -> None:
    settings = Settings(database_url=dev_cluster.dsn())
    [worker] = build_workers(client, discover(), settings, ["sample"])
    async with worker:
        bad = await haul_client.start(
            GreetingWorkflow.run, GreetingInput(name="replay", fail=True), uuid.uuid4().hex
        )
        with pytest.raises(WorkflowFailureError):
            await bad.result()
    history = await bad.fetch_history()
    # The enrichment is one memo upsert in the failing task; replay must produce it again.
    assert any(e.HasField("workflow_properties_modified_event_attributes") for e in history.events)
    replayer = Replayer(workflows=[GreetingWorkflow], plugins=[HaulPlugin()])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None
