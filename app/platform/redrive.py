"""Redrive: run a recorded failure again, link the new run, and follow it until it closes.

A re-run starts the same workflow type under the same ID with the original input payloads
(passed through untouched, so nothing is re-encoded); task workflows allow that because their
reuse policy is ALLOW_DUPLICATE_FAILED_ONLY. A failure already redriven is refused unless that
redrive itself failed.
"""

from __future__ import annotations

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RawValue

from app.platform.failure_poller import payloads_from_json
from app.platform.failures import STUCK, FailureStore
from app.platform.router import ClusterRouter

_OUTCOMES = {
    WorkflowExecutionStatus.COMPLETED: "Completed",
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.CANCELED: "Canceled",
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
}


async def redrive(router: ClusterRouter, store: FailureStore, failure_id: int) -> str:
    """Start the failed workflow again under its ID with its original input; the new run ID.

    Through the router, so during a migration it is placed like any start: a task that
    succeeded on either cluster is not run again."""
    failure = store.get(failure_id)
    live = [r for r in store.redrives(failure_id) if r.outcome in ("Running", "Completed")]
    if live:
        raise ValueError(
            f"failure {failure_id} was already redriven as run {live[-1].new_run_id} "
            f"({live[-1].outcome}); only a redrive that failed can be redriven again"
        )
    if failure.close_status == STUCK:
        raise ValueError(
            f"failure {failure_id} is a stuck run that is still open: deploy the fix and the "
            "run retries its workflow task by itself, or terminate it and redrive"
        )
    handle = await router.redrive(
        failure.workflow_type,
        [RawValue(p) for p in payloads_from_json(failure.input_payloads)],
        failure.workflow_id,
        failure.task_queue,
    )
    run_id = handle.result_run_id or ""
    store.add_redrive(failure_id, "rerun", run_id)
    return run_id


async def follow_redrives(client: Client, store: FailureStore) -> int:
    """Record the outcome of every redrive whose run has closed; how many closed."""
    closed = 0
    for link in store.redrives(open_only=True):
        failure = store.get(link.failure_id)
        desc = await client.get_workflow_handle(
            failure.workflow_id, run_id=link.new_run_id
        ).describe()
        if desc.status is None or desc.status == WorkflowExecutionStatus.RUNNING:
            continue
        store.close_redrive(link.id, _OUTCOMES[desc.status], desc.close_time or desc.start_time)
        closed += 1
    return closed
