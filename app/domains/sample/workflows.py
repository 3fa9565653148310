"""Sample workflows: a task workflow with one activity, and a retry_on_signal entity."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from app.platform.retry_on_signal import EntityEvent, EntityInput, EntityResult, RetryOnSignal

with workflow.unsafe.imports_passed_through():
    from app.domains.sample import DOMAIN
    from app.domains.sample.activities import SampleActivities
    from app.domains.sample.models import GreetingInput, GreetingResult, LedgerBatch


@DOMAIN.workflow
class GreetingWorkflow:
    @workflow.run
    async def run(self, input: GreetingInput) -> GreetingResult:
        return await workflow.execute_activity_method(
            SampleActivities.compose_greeting,
            input,
            start_to_close_timeout=timedelta(seconds=max(30, input.work_seconds * 3)),
            heartbeat_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=1)),
        )


@DOMAIN.workflow
class LedgerEntityWorkflow(RetryOnSignal):
    """Processes every event sent to one entity exactly once (see retry_on_signal)."""

    @workflow.run
    async def run(self, input: EntityInput) -> EntityResult:
        return await self.run_entity(input)

    async def process(self, events: list[EntityEvent]) -> None:
        echo = None
        # An "echo request" asks the activity to signal this entity as its last step.
        for event in events:
            if event.kind == "echo-request":
                echo = f"{event.event_id}-echo"
        await workflow.execute_activity_method(
            SampleActivities.process_ledger_batch,
            LedgerBatch(
                entity_key=workflow.info().workflow_id,
                event_ids=[e.event_id for e in events],
                work_seconds=float(self.state.get("work_seconds", 0.0)),
                echo_event_id=echo,
            ),
            start_to_close_timeout=timedelta(seconds=60),
        )
