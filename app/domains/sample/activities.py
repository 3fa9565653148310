"""Sample activities: a greeting with optional slow work, and an entity batch step."""

from __future__ import annotations

import asyncio

from temporalio import activity
from temporalio.exceptions import ApplicationError

from app.domains.sample import DOMAIN
from app.domains.sample.models import GreetingInput, GreetingResult, LedgerBatch
from app.platform.domain import activity_method
from app.platform.ids import split_workflow_id
from app.platform.retry_on_signal import EntityEvent
from app.platform.worker import WorkerContext


@DOMAIN.activities
class SampleActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        self.haul = ctx.haul

    @activity_method
    async def compose_greeting(self, input: GreetingInput) -> GreetingResult:
        """Sleep in heartbeated steps so cancellation and worker loss are noticed promptly."""
        remaining = input.work_seconds
        while remaining > 0:
            step = min(0.2, remaining)
            await asyncio.sleep(step)
            remaining -= step
            activity.heartbeat(remaining)
        if input.fail:
            raise ApplicationError(
                f"greeting for {input.name!r} was asked to fail",
                type="SampleFailure",
                non_retryable=True,
            )
        return GreetingResult(greeting=f"Hello, {input.name}!", attempts=activity.info().attempt)

    @activity_method
    async def process_ledger_batch(self, batch: LedgerBatch) -> int:
        """The entity's unit of work; optionally signals its own entity as its last step."""
        await asyncio.sleep(batch.work_seconds)
        if batch.echo_event_id:
            # Imported here: the workflows module imports this one.
            from app.domains.sample.workflows import LedgerEntityWorkflow

            _, key = split_workflow_id(batch.entity_key)
            await self.haul.signal(
                LedgerEntityWorkflow.run,
                key,
                LedgerEntityWorkflow.on_event,
                EntityEvent(event_id=batch.echo_event_id, kind="echo"),
            )
        return len(batch.event_ids)
