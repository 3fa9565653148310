"""The ledger entity as it ran before `retry-on-signal-carry-pending`, for capturing a
pre-patch history only: same workflow type name, run on its own task queue.

Before the patch a continued run marked every carried ID as seen and then offered the carried
events to itself again, so they were dropped and the run waited for a new event.
"""

from __future__ import annotations

from temporalio import workflow

from app.domains.sample.workflows import LedgerEntityWorkflow
from app.platform.retry_on_signal import REMEMBERED_IDS, EntityInput, EntityResult

TASK_QUEUE = "replay-prepatch"


@workflow.defn(name="LedgerEntityWorkflow")
class LedgerBeforeCarryPatch(LedgerEntityWorkflow):
    @workflow.run
    async def run(self, input: EntityInput) -> EntityResult:
        self.state = dict(input.state)
        for event_id in input.seen_ids:
            self._seen[event_id] = None
        for event in input.pending:
            self.on_event(event)
        processed = input.processed
        while True:
            await workflow.wait_condition(lambda: bool(self._pending))
            batch, self._pending = self._pending, []
            await self.process(batch)
            processed += len(batch)
            if not self._pending:
                return EntityResult(input.entity_key, processed, input.runs + 1, self.state)
            if self._history_too_long(input.history_limit):
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(
                    EntityInput(
                        entity_key=input.entity_key,
                        pending=self._pending,
                        seen_ids=list(self._seen)[-REMEMBERED_IDS:],
                        runs=input.runs + 1,
                        processed=processed,
                        history_limit=input.history_limit,
                        state=self.state,
                    )
                )
