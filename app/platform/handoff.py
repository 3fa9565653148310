"""Handoff: a run open on the old cluster continues on the new one under the same workflow ID.

A workflow opts in by mixing in `Handoff` (retry_on_signal entities do). `haul migrate handoff`
sends it the `handoff` update; at its next safe point (after its current unit of work) the run
calls `hand_off(continuation, take_late)`:

1. the record activity writes the continuation (its state and every pending event) to the
   app database and starts the resumer workflow on the new cluster;
2. events that reach the run from then on are forwarded into that snapshot by activity, until
   none is left (`take_late` hands them over);
3. the run completes on the old cluster with the reason "handed off".

The resumer waits for the old run to close, then starts the continuation on the new cluster
from the snapshot (ClusterRouter.resume_handoff); a signal-with-start that finds the old run
closed first does the same with its event. One run is open at a time, and every event is
processed by exactly one of them (see app/platform/router.py).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from app.platform.handoff_models import (
        FORWARD_ACTIVITY,
        HANDED_OFF_MEMO,
        HANDOFF_UPDATE,
        RECORD_ACTIVITY,
        RESUME_ACTIVITY,
        RESUME_WORKFLOW,
        HandoffAck,
        HandoffForward,
        HandoffRequest,
        HandoffSnapshot,
        HandoffTarget,
    )

# Database or cluster trouble: keep trying (the run stays open and keeps its events meanwhile).
_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=0.5),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    non_retryable_error_types=["HandoffNotConfigured"],
)


class Handoff:
    """Mixin for a workflow that can continue on another cluster.

    The workflow checks `handoff_requested` at its safe points and then awaits `hand_off` with
    the input it continues from: a dict whose `pending` list holds events with an `event_id`,
    where events that arrive later are appended.
    """

    _handoff_request: HandoffRequest | None = None

    @workflow.update(name=HANDOFF_UPDATE)
    def request_handoff(self, request: HandoffRequest) -> HandoffAck:
        """Ask the run to continue on `request.to_cluster` after its current unit of work."""
        self._handoff_request = request
        info = workflow.info()
        return HandoffAck(info.workflow_id, info.run_id, request.to_cluster)

    @request_handoff.validator
    def _validate_handoff(self, request: HandoffRequest) -> None:
        if not request.to_cluster or request.to_cluster == request.from_cluster:
            raise ValueError(
                f"hand off from {request.from_cluster!r} to {request.to_cluster!r}: name the "
                "other cluster of the migration"
            )
        asked = self._handoff_request
        if asked is not None and asked.to_cluster != request.to_cluster:
            raise ValueError(f"this run is already handing off to {asked.to_cluster!r}")

    @property
    def handoff_requested(self) -> bool:
        return self._handoff_request is not None

    async def hand_off(
        self, continuation: dict[str, Any], take_late: Callable[[], list[dict[str, Any]]]
    ) -> bool:
        """Record `continuation` and forward late events until none is left; True when the
        run may now complete as handed off. False when the worker cannot hand off (it does not
        follow the migration state): the request is dropped and the run carries on here."""
        request = self._handoff_request
        assert request is not None, "hand_off without a handoff request"
        info = workflow.info()
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.upsert_memo({HANDED_OFF_MEMO: request.to_cluster})
        try:
            await workflow.execute_activity(
                RECORD_ACTIVITY,
                HandoffSnapshot(
                    workflow_id=info.workflow_id,
                    workflow_type=info.workflow_type,
                    task_queue=info.task_queue,
                    from_run_id=info.run_id,
                    from_cluster=request.from_cluster,
                    to_cluster=request.to_cluster,
                    continuation=continuation,
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=_RETRY,
            )
        except ActivityError as err:
            workflow.logger.error("handoff refused, staying on this cluster: %s", err.cause)
            self._handoff_request = None
            workflow.upsert_memo({HANDED_OFF_MEMO: None})
            return False
        while True:
            await workflow.wait_condition(workflow.all_handlers_finished)
            late = take_late()
            if not late:
                return True
            await workflow.execute_activity(
                FORWARD_ACTIVITY,
                HandoffForward(info.workflow_id, info.run_id, late),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=_RETRY,
            )


@workflow.defn(name=RESUME_WORKFLOW)
class HandoffResume:
    """Runs on the new cluster: waits for the handed-off run to close (its activity retries
    while it is open) and starts the continuation there, unless a router already did."""

    @workflow.run
    async def run(self, target: HandoffTarget) -> str:
        run_id: str = await workflow.execute_activity(
            RESUME_ACTIVITY,
            target,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=0.5),
                backoff_coefficient=1.5,
                maximum_interval=timedelta(seconds=5),
            ),
        )
        return run_id
