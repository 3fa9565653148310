"""The activities a handoff runs: record the snapshot, forward late events, resume.

They reach the clusters and the app database through the worker's router (`HaulClient`), so a
worker that serves an opted-in workflow must follow the migration state (HAUL_MIGRATION).
"""

from __future__ import annotations

import asyncio
import logging

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError

from app.platform.client import HaulClient
from app.platform.handoff_models import (
    FORWARD_ACTIVITY,
    RECORD_ACTIVITY,
    RESUME_ACTIVITY,
    RESUME_WORKFLOW,
    HandoffForward,
    HandoffSnapshot,
    HandoffTarget,
)
from app.platform.handoff_store import HandoffStore
from app.platform.ids import workflow_id

log = logging.getLogger("haul.handoff")
# How long one resume attempt waits for the old run to close before it retries (under the
# resumer's 30 s start-to-close timeout).
OPEN_WAIT_SECONDS = 20.0


class HandoffActivities:
    """Registered by the worker builder on every task queue with an opted-in workflow."""

    def __init__(self, haul: HaulClient) -> None:
        self.haul = haul

    def _store(self) -> HandoffStore:
        store = self.haul.router.handoffs
        if store is None:
            raise ApplicationError(
                "handoff needs the migration state: run this worker with HAUL_MIGRATION=true "
                "and the app database (HAUL_DATABASE_URL)",
                type="HandoffNotConfigured",
                non_retryable=True,
            )
        return store

    @activity.defn(name=RECORD_ACTIVITY)
    async def record(self, snap: HandoffSnapshot) -> bool:
        """Write the run's snapshot, then start the resumer on the new cluster, which waits
        for this run to close and starts the continuation there (idempotent: a retry writes
        nothing over events forwarded since, and joins the resumer)."""
        store = self._store()
        client = self.haul.router.clients.get(snap.to_cluster)
        if client is None:
            raise ApplicationError(
                f"this worker cannot reach cluster {snap.to_cluster!r} yet (its router has no "
                "client for it); retrying",
                type="HandoffTargetUnknown",
            )
        written = await asyncio.to_thread(store.record, snap)
        await client.start_workflow(
            RESUME_WORKFLOW,
            HandoffTarget(snap.workflow_id, snap.from_run_id, snap.from_cluster, snap.to_cluster),
            id=workflow_id(RESUME_WORKFLOW, snap.workflow_id),
            task_queue=snap.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        )
        return written

    @activity.defn(name=FORWARD_ACTIVITY)
    async def forward(self, fwd: HandoffForward) -> int:
        """Append events that reached the old run after its snapshot to that snapshot."""
        added, held = await asyncio.to_thread(
            self._store().forward, fwd.workflow_id, fwd.from_run_id, fwd.events
        )
        if not held:
            # The run is open until this activity succeeds, and nothing resumes an open run:
            # only a late attempt of a forward that already succeeded can find the row resumed.
            log.error(
                "late forward found the handoff of %s resumed without events %s",
                fwd.workflow_id,
                [e["event_id"] for e in fwd.events],
            )
        return added

    @activity.defn(name=RESUME_ACTIVITY)
    async def resume(self, target: HandoffTarget) -> str:
        """Once the handed-off run is closed, start its continuation (unless a router did)."""
        router = self.haul.router
        old = router.clients.get(target.from_cluster)
        if old is None:
            raise ApplicationError(
                f"no client for cluster {target.from_cluster!r} yet", type="HandoffSourceUnknown"
            )
        handed_off = old.get_workflow_handle(target.workflow_id, run_id=target.from_run_id)
        # The old run closes within moments of its last forward: wait here rather than fail
        # the attempt (each failure is a retry and a logged traceback).
        pause, waited = 0.1, 0.0
        while (await handed_off.describe()).status == WorkflowExecutionStatus.RUNNING:
            if waited > OPEN_WAIT_SECONDS:
                raise ApplicationError(
                    f"{target.workflow_id} is still open on {target.from_cluster!r}; waiting",
                    type="HandoffSourceOpen",
                )
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 2.0)
        resumed = await router.resume_handoff(target.workflow_id)
        return resumed.result_run_id or "" if resumed is not None else ""
