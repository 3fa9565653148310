"""Redrive on the dev stack: re-run and reset, signals re-applied or excluded, bulk at a pace."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.worker import Worker

from app.platform.client import HaulClient
from app.platform.failure_poller import Poller
from app.platform.failures import FailureFilter, FailureStore, NoSuchFailureError, StoredFailure
from app.platform.redrive import (
    RedriveOptions,
    RedriveRefusedError,
    follow_redrives,
    redrive,
    redrive_matching,
)
from app.stack.registry import ClusterRecord
from tests.integration.failure_workflows import (
    FailingWorkflow,
    FailInput,
    FixedFailingWorkflow,
)

SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


@pytest.fixture
def store(dev_cluster: ClusterRecord) -> FailureStore:
    return FailureStore(dev_cluster.dsn())


@asynccontextmanager
async def worker(client: Client, task_queue: str, fixed: bool) -> AsyncIterator[Worker]:
    workflows = [FixedFailingWorkflow] if fixed else [FailingWorkflow]
    async with Worker(client, task_queue=task_queue, workflows=workflows) as w:
        yield w


async def fail(client: Client, task_queue: str, message: str, signal: str | None = None) -> str:
    """Run FailingWorkflow to its failure (after one signal when `signal` is given); its ID."""
    async with worker(client, task_queue, fixed=False):
        handle = await client.start_workflow(
            FailingWorkflow.run,
            FailInput(message, signals=1 if signal else 0),
            id=f"rd-{uuid.uuid4().hex[:12]}",
            task_queue=task_queue,
        )
        if signal:
            # After the first task, so the signal lies between the first and last task.
            await first_task_done(handle)
            await handle.signal(FailingWorkflow.go, signal)
        with pytest.raises(WorkflowFailureError):
            await asyncio.wait_for(handle.result(), 60)
    return handle.id


async def first_task_done(handle: WorkflowHandle[Any, Any]) -> None:
    for _ in range(240):
        if any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
            for e in await events(handle)
        ):
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"{handle.id}: its first workflow task never completed")


async def recorded(
    client: Client, store: FailureStore, task_queue: str, n: int, deadline: float = 90
) -> list[StoredFailure]:
    """The `n` failures of `task_queue`, oldest first, once the poller has recorded them all."""
    poller = Poller(client, store, cluster="it-dev", overlap=timedelta(minutes=2))
    ours = FailureFilter(status=None, task_queue=task_queue)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        await poller.poll_once()
        found = store.list(ours, limit=1000)
        if len(found) >= n:
            return sorted(found, key=lambda f: (f.failed_at, f.id))
        if loop.time() > end:
            raise AssertionError(f"{len(found)} of {n} failures of {task_queue} recorded")
        await asyncio.sleep(0.5)


async def events(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [e async for e in handle.fetch_history_events()]


async def processed_after_reset(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    """The new run's history once a worker has completed a workflow task after the reset."""
    for _ in range(240):
        got = await events(handle)
        resets = [
            e.event_id
            for e in got
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            and e.workflow_task_failed_event_attributes.cause
            == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
        ]
        assert len(resets) == 1, "a reset run carries exactly one reset marker"
        if any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED and e.event_id > resets[0]
            for e in got
        ):
            return got
        await asyncio.sleep(0.25)
    raise AssertionError(f"{handle.id}: no workflow task completed after the reset")


async def test_a_reset_redrive_excludes_signals_when_asked(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    wf_id = await fail(client, task_queue, "needs input", signal="original")
    [rec] = await recorded(client, store, task_queue, 1)
    options = RedriveOptions(mode="reset", reset_to="first", reapply_signals=False)
    async with worker(client, task_queue, fixed=True):
        run_id = await redrive(HaulClient(client).router, store, rec.id, options)
        new = client.get_workflow_handle(wf_id, run_id=run_id)
        history = await processed_after_reset(new)
        # Reset to the first task drops the signal the failed run got, and none is re-applied,
        # so the fixed code waits for one.
        assert [e for e in history if e.event_type == SIGNALED] == []
        assert (await new.describe()).status == WorkflowExecutionStatus.RUNNING
        await new.signal(FixedFailingWorkflow.go, "by hand")
        assert await asyncio.wait_for(new.result(), 60) == "fixed: needs input +by hand"
    [link] = store.redrives(rec.id)
    assert (link.mode, link.new_run_id, link.reset_to, link.reapply_signals) == (
        "reset",
        run_id,
        "first",
        False,
    )
    assert run_id != rec.run_id


async def test_a_reset_redrive_reapplies_signals_when_asked_and_is_followed(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    wf_id = await fail(client, task_queue, "needs input", signal="original")
    [rec] = await recorded(client, store, task_queue, 1)
    options = RedriveOptions(mode="reset", reset_to="first", reapply_signals=True)
    async with worker(client, task_queue, fixed=True):
        run_id = await redrive(HaulClient(client).router, store, rec.id, options)
        new = client.get_workflow_handle(wf_id, run_id=run_id)
        assert await asyncio.wait_for(new.result(), 60) == "fixed: needs input +original"
    signals = [e for e in await events(new) if e.event_type == SIGNALED]
    assert len(signals) == 1
    await follow_redrives(client, store)
    [link] = store.redrives(rec.id)
    assert (link.new_run_id, link.outcome, link.reapply_signals) == (run_id, "Completed", True)
    # A redrive that worked is not redriven again, in either mode.
    with pytest.raises(RedriveRefusedError, match="already redriven"):
        await redrive(HaulClient(client).router, store, rec.id)


async def test_a_reset_to_the_last_task_keeps_signals_before_it(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    wf_id = await fail(client, task_queue, "late bug", signal="kept")
    [rec] = await recorded(client, store, task_queue, 1)
    # The signal came before the last completed task, so it is history, not re-applied.
    options = RedriveOptions(mode="reset", reset_to="last", reapply_signals=False)
    async with worker(client, task_queue, fixed=True):
        run_id = await redrive(HaulClient(client).router, store, rec.id, options)
        new = client.get_workflow_handle(wf_id, run_id=run_id)
        assert await asyncio.wait_for(new.result(), 60) == "fixed: late bug +kept"
    assert store.redrives(rec.id)[0].reset_to == "last"


async def test_a_reset_of_a_run_that_never_ran_a_task_is_refused(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    handle = await client.start_workflow(
        FailingWorkflow.run,
        FailInput("never ran"),
        id=f"rd-{uuid.uuid4().hex[:12]}",
        task_queue=task_queue,  # no worker: it times out before any task completes
        execution_timeout=timedelta(seconds=1),
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    [rec] = await recorded(client, store, task_queue, 1)
    assert rec.close_status == "TimedOut"
    with pytest.raises(RedriveRefusedError, match="never completed a workflow task"):
        await redrive(HaulClient(client).router, store, rec.id, RedriveOptions(mode="reset"))
    assert store.redrives(rec.id) == []


async def test_a_bulk_redrive_keeps_its_pace_skips_live_ones_and_reports_refusals(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    # Sequential, so close times (and the oldest-first order) follow the loop.
    ids = [await fail(client, task_queue, f"batch {n}") for n in range(7)]
    recs = await recorded(client, store, task_queue, 7)
    assert [r.workflow_id for r in recs] == ids
    router = HaulClient(client).router
    async with worker(client, task_queue, fixed=True):
        # recs[0]'s ID succeeds outside haul: a re-run must not run a success again.
        done = await client.start_workflow(
            FixedFailingWorkflow.run, FailInput("outside"), id=ids[0], task_queue=task_queue
        )
        await done.result()
        # recs[1] already has a redrive that worked: the bulk skips it.
        single = await redrive(router, store, recs[1].id)
        await client.get_workflow_handle(ids[1], run_id=single).result()
        rate = 4.0
        bulk = await redrive_matching(
            router, store, FailureFilter(task_queue=task_queue), None, per_second=rate, limit=5
        )
        assert bulk.redriven == [r.id for r in recs[2:6]]
        assert [r.failure_id for r in bulk.refused] == [recs[0].id]
        assert "open or has succeeded" in bulk.refused[0].reason
        for fid, run_id in bulk.runs.items():
            wf_id = next(r.workflow_id for r in recs if r.id == fid)
            assert await client.get_workflow_handle(wf_id, run_id=run_id).result() == (
                f"fixed: batch {ids.index(wf_id)}"
            )
    links = [link for r in recs[2:6] for link in store.redrives(r.id)]
    assert [link.new_run_id for link in links] == [bulk.runs[r.id] for r in recs[2:6]]
    # The pace, from what the store recorded: no two redrives closer than 1/rate, so no
    # one-second window holds more than `rate` of them.
    stamps = sorted(link.requested_at for link in links)
    gaps = [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]
    assert min(gaps) >= 1 / rate - 0.005, gaps
    assert max(sum(1 for t in stamps if s <= t < s + timedelta(seconds=1)) for s in stamps) <= rate
    assert store.redrives(recs[6].id) == []  # past the limit
    await follow_redrives(client, store)
    assert {link.outcome for r in recs[2:6] for link in store.redrives(r.id)} == {"Completed"}


async def test_a_bulk_redrive_refuses_a_rate_or_limit_that_cannot_be_kept(
    client: Client, store: FailureStore
) -> None:
    router = HaulClient(client).router
    with pytest.raises(ValueError, match="per_second"):
        await redrive_matching(router, store, FailureFilter(), None, per_second=0, limit=5)
    with pytest.raises(ValueError, match="limit"):
        await redrive_matching(router, store, FailureFilter(), None, per_second=1, limit=0)


async def test_a_resolved_failure_can_be_reopened_with_a_note(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    await fail(client, task_queue, "came back")
    [rec] = await recorded(client, store, task_queue, 1)
    store.set_status(rec.id, "resolved", "fixed in 1.2")
    assert store.reopen(rec.id, "seen again in 1.3") is True
    again = store.get(rec.id)
    assert (again.status, again.notes) == ("open", "fixed in 1.2\nseen again in 1.3")
    assert store.reopen(rec.id) is False  # already open: nothing changes
    assert store.get(rec.id).notes == again.notes
    with pytest.raises(NoSuchFailureError):
        store.reopen(10**12)


def haul(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_the_cli_redrives_in_bulk_and_by_reset_and_reopens(
    dev_cluster: ClusterRecord, client: Client, store: FailureStore, task_queue: str
) -> None:
    for n in range(2):
        await fail(client, task_queue, f"cli {n}")
    await fail(client, task_queue, "cli reset", signal="original")
    recs = await recorded(client, store, task_queue, 3)
    cluster = ["--cluster", dev_cluster.name]
    wrong = await asyncio.to_thread(
        haul, "failures", "redrive", str(recs[0].id), "--exclude-signals", *cluster
    )
    assert wrong.returncode == 2 and "only to --mode reset" in wrong.stderr, wrong.stderr
    reset = await asyncio.to_thread(
        haul,
        "failures",
        "redrive",
        str(recs[2].id),
        "--mode",
        "reset",
        "--reset-to",
        "first",
        "--exclude-signals",
        *cluster,
    )
    assert reset.returncode == 0, reset.stdout + reset.stderr
    [link] = store.redrives(recs[2].id)
    assert (link.mode, link.reset_to, link.reapply_signals) == ("reset", "first", False)
    assert link.new_run_id in reset.stdout
    bulk = await asyncio.to_thread(
        haul,
        "failures",
        "redrive",
        "--filter",
        "--task-queue",
        task_queue,
        "--rate",
        "2",
        "--limit",
        "5",
        *cluster,
    )
    assert bulk.returncode == 0, bulk.stdout + bulk.stderr
    # The reset one has a live redrive, so the batch takes the other two.
    assert "2 redriven, 0 refused" in bulk.stdout, bulk.stdout
    assert [len(store.redrives(r.id)) for r in recs] == [1, 1, 1]
    again = await asyncio.to_thread(haul, "failures", "redrive", str(recs[0].id), *cluster)
    assert again.returncode == 1 and "already redriven" in again.stdout, again.stdout
    store.set_status(recs[0].id, "resolved", "")
    reopened = await asyncio.to_thread(
        haul, "failures", "reopen", str(recs[0].id), "--note", "back again", *cluster
    )
    assert reopened.returncode == 0 and "reopened" in reopened.stdout, reopened.stdout
    assert (store.get(recs[0].id).status, store.get(recs[0].id).notes) == ("open", "back again")


async def test_following_skips_a_redrive_whose_run_this_cluster_does_not_hold(
    client: Client, store: FailureStore, task_queue: str
) -> None:
    await fail(client, task_queue, "elsewhere")
    [rec] = await recorded(client, store, task_queue, 1)
    # As if re-run on the other cluster of a migration: this client cannot find that run.
    store.add_redrive(rec.id, "rerun", str(uuid.uuid4()))
    await follow_redrives(client, store)
    [link] = store.redrives(rec.id)
    assert (link.outcome, link.closed_at) == ("Running", None)
