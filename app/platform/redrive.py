"""Redrive: run a recorded failure again, link the new run, and follow it until it closes.

Two modes. A *re-run* starts the same workflow type under the same ID with the original input
payloads (passed through untouched, so nothing is re-encoded); task workflows allow that because
their reuse policy is ALLOW_DUPLICATE_FAILED_ONLY. A *reset* asks Temporal to reset the failed
run to its first or last completed workflow task: the new run keeps the history up to that
point, runs the worker's current code from there, and gets the signals and updates received
after it re-applied, or not, as chosen. A failure already redriven is refused unless that
redrive itself failed.

A bulk redrive takes the matching failures oldest first and starts at most `per_second` of
them a second; each one's start time is recorded with its link, so the pace can be checked
from the store afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from pydantic import BaseModel, Field
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyExcludeType, ResetReapplyType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RawValue
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from app.platform.failure_poller import payloads_from_json
from app.platform.failures import STUCK, FailureFilter, FailureStore, StoredFailure
from app.platform.router import ClusterRouter

_OUTCOMES = {
    WorkflowExecutionStatus.COMPLETED: "Completed",
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.CANCELED: "Canceled",
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
    WorkflowExecutionStatus.CONTINUED_AS_NEW: "ContinuedAsNew",
}
# Redrive outcomes that block another redrive: one still running, or one that worked.
LIVE_OUTCOMES = ("Running", "Completed")


class RedriveOptions(BaseModel):
    """How to run a failure again.

    `reapply_signals` (reset only) covers signals and updates alike: both are what arrived
    from outside after the reset point, and a caller who distrusts one distrusts the other.
    """

    mode: Literal["rerun", "reset"] = "rerun"
    reset_to: Literal["first", "last"] = "last"
    reapply_signals: bool = True


class RedriveRefusedError(ValueError):
    """This failure cannot be redriven (the message says why and what to do)."""


class Refusal(BaseModel):
    failure_id: int
    reason: str


class BulkRedrive(BaseModel):
    """What a bulk redrive did: failures redriven in order, with their new runs, and refusals."""

    redriven: list[int] = Field(default_factory=list)
    runs: dict[int, str] = Field(default_factory=dict)
    refused: list[Refusal] = Field(default_factory=list)


def refusal(failure: StoredFailure, options: RedriveOptions, live_run: str | None) -> str | None:
    """Why this failure must not be redriven now, or None. `live_run`: a redrive of it that
    is running or completed."""
    if live_run is not None:
        return (
            f"failure {failure.id} was already redriven as run {live_run}; "
            "only a redrive that failed can be redriven again"
        )
    if failure.close_status == STUCK and options.mode == "rerun":
        return (
            f"failure {failure.id} is a stuck run that is still open: deploy the fix and the run "
            "retries its workflow task by itself, or redrive it with --mode reset"
        )
    return None


async def redrive(
    router: ClusterRouter,
    store: FailureStore,
    failure_id: int,
    options: RedriveOptions | None = None,
) -> str:
    """Redrive one failure (a re-run by default); the new run ID. Raises RedriveRefusedError
    when it must not be redriven, and WorkflowAlreadyStartedError when a run of its ID is open
    or has succeeded (a re-run never runs a success again)."""
    options = options or RedriveOptions()
    failure = await asyncio.to_thread(store.get, failure_id)
    reason = refusal(failure, options, await _live_run(store, failure_id))
    if reason:
        raise RedriveRefusedError(reason)
    return await _redrive_one(router, store, failure, options, datetime.now(UTC))


async def redrive_matching(
    router: ClusterRouter,
    store: FailureStore,
    filt: FailureFilter,
    options: RedriveOptions | None,
    *,
    per_second: float,
    limit: int,
) -> BulkRedrive:
    """Redrive up to `limit` failures matching `filt` (oldest first, skipping those with a
    live redrive), starting at most `per_second` a second. One refusal never stops the rest."""
    if not per_second > 0:
        raise ValueError(f"per_second {per_second}: must be above 0")
    if limit < 1:
        raise ValueError(f"limit {limit}: must be at least 1")
    options = options or RedriveOptions()
    candidates = await asyncio.to_thread(store.redrive_candidates, filt, limit)
    result = BulkRedrive()
    pace = Pace(per_second)
    for failure in candidates:
        reason = refusal(failure, options, None)
        if reason:
            result.refused.append(Refusal(failure_id=failure.id, reason=reason))
            continue
        at = await pace.wait()
        try:
            run_id = await _redrive_one(router, store, failure, options, at)
        except Exception as exc:  # one refusal must not stop the batch
            result.refused.append(Refusal(failure_id=failure.id, reason=why(exc)))
            continue
        result.redriven.append(failure.id)
        result.runs[failure.id] = run_id
    return result


class Pace:
    """Grants slots at most `per_second` a second, evenly spaced, with no burst.

    `wait` returns the wall-clock time of the slot, which is what the store records."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next: float | None = None

    async def wait(self) -> datetime:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._next is not None and now < self._next:
            await asyncio.sleep(self._next - now)
            now = loop.time()
        self._next = now + self.interval
        return datetime.now(UTC)


def why(exc: Exception) -> str:
    """A redrive error as a person reads it."""
    if isinstance(exc, WorkflowAlreadyStartedError):
        return "a run of this workflow ID is open or has succeeded; nothing to redrive"
    return str(exc) or type(exc).__name__


async def _live_run(store: FailureStore, failure_id: int) -> str | None:
    links = await asyncio.to_thread(store.redrives, failure_id)
    live = [r for r in links if r.outcome in LIVE_OUTCOMES]
    return live[-1].new_run_id if live else None


async def _redrive_one(
    router: ClusterRouter,
    store: FailureStore,
    failure: StoredFailure,
    options: RedriveOptions,
    requested_at: datetime,
) -> str:
    if options.mode == "reset":
        client = _client_for(router, failure)
        run_id = await reset(client, failure, options)
    else:
        # Through the router, so during a migration it is placed like any start: a task that
        # succeeded on either cluster is not run again.
        _check_namespace(router.clients[router.state.old], failure)
        handle = await router.redrive(
            failure.workflow_type,
            [RawValue(p) for p in payloads_from_json(failure.input_payloads)],
            failure.workflow_id,
            failure.task_queue,
        )
        run_id = handle.result_run_id or ""
    await asyncio.to_thread(
        partial(
            store.add_redrive,
            reset_to=options.reset_to if options.mode == "reset" else None,
            reapply_signals=options.reapply_signals if options.mode == "reset" else None,
        ),
        failure.id,
        options.mode,
        run_id,
        requested_at,
    )
    return run_id


def _check_namespace(client: Client, failure: StoredFailure) -> None:
    if failure.namespace and failure.namespace != client.namespace:
        raise RedriveRefusedError(
            f"failure {failure.id} is in namespace {failure.namespace!r} but this process "
            f"reaches {client.namespace!r}; redrive it from a process of that namespace"
        )


def _client_for(router: ClusterRouter, failure: StoredFailure) -> Client:
    """The client of the cluster the failed run lives on (a reset acts on that very run)."""
    client = router.clients.get(failure.cluster)
    if client is None and len(router.clients) == 1:
        client = next(iter(router.clients.values()))
    if client is None:
        raise RedriveRefusedError(
            f"failure {failure.id} is on cluster {failure.cluster!r}, which this process does "
            f"not reach (it reaches {', '.join(sorted(router.clients))}); re-run it instead"
        )
    _check_namespace(client, failure)
    return client


async def reset(client: Client, failure: StoredFailure, options: RedriveOptions) -> str:
    """Reset the failed run to its first or last completed workflow task; the new run ID."""
    handle = client.get_workflow_handle(failure.workflow_id, run_id=failure.run_id)
    completed = [
        e.event_id
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    ]
    if not completed:
        raise RedriveRefusedError(
            f"failure {failure.id}: run {failure.run_id} never completed a workflow task, so "
            "there is nothing to reset to; re-run it instead (--mode rerun)"
        )
    if options.reapply_signals:
        reapply = ResetReapplyType.RESET_REAPPLY_TYPE_ALL_ELIGIBLE
        exclude = []
    else:
        reapply = ResetReapplyType.RESET_REAPPLY_TYPE_NONE
        exclude = [
            ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL,
            ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE,
        ]
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(
                workflow_id=failure.workflow_id, run_id=failure.run_id
            ),
            reason=f"haul redrive of failure {failure.id}",
            workflow_task_finish_event_id=completed[0 if options.reset_to == "first" else -1],
            request_id=str(uuid.uuid4()),
            reset_reapply_type=reapply,
            reset_reapply_exclude_types=exclude,
            identity=client.identity,
        )
    )
    return response.run_id


async def follow_redrives(client: Client, store: FailureStore) -> int:
    """Record the outcome of every redrive whose run has closed; how many closed.

    A run this client's cluster does not hold is skipped, not an error: during a migration
    each cluster's client follows the redrives that landed there."""
    closed = 0
    for link in await asyncio.to_thread(store.redrives, open_only=True):
        failure = await asyncio.to_thread(store.get, link.failure_id)
        try:
            desc = await client.get_workflow_handle(
                failure.workflow_id, run_id=link.new_run_id
            ).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        if desc.status is None or desc.status == WorkflowExecutionStatus.RUNNING:
            continue
        await asyncio.to_thread(
            store.close_redrive, link.id, _OUTCOMES[desc.status], desc.close_time or desc.start_time
        )
        closed += 1
    return closed
