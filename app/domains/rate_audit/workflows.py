"""update_rate_audit_status: one entity workflow per shipment job (retry_on_signal).

Invoice revisions, task completions and payment events about one job converge on its single
running workflow through signal-with-start; each batch of events is applied once and the job's
audit status recomputed from Postgres.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

from app.platform.retry_on_signal import EntityEvent, EntityInput, EntityResult, RetryOnSignal

with workflow.unsafe.imports_passed_through():
    from app.domains.rate_audit import DOMAIN
    from app.domains.rate_audit.activities import RateAuditActivities
    from app.domains.rate_audit.models import JobEvent, JobEventsInput

EVENT_KINDS = ("invoice_revision", "task_completed", "payment")


@DOMAIN.workflow(name="UpdateRateAuditStatus")
class UpdateRateAuditStatusWorkflow(RetryOnSignal):
    """Keeps one shipment job's audit status in step with every event sent to it."""

    @workflow.run
    async def run(self, input: EntityInput) -> EntityResult:
        return await self.run_entity(input)

    async def process(self, events: list[EntityEvent]) -> None:
        status = await workflow.execute_activity_method(
            RateAuditActivities.apply_shipment_job_events,
            JobEventsInput(
                job_key=self._job_key(),
                events=[
                    JobEvent(event_id=e.event_id, kind=e.kind, payload=e.payload) for e in events
                ],
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=20),
        )
        self.state["audit_status"] = status.audit_status

    @staticmethod
    def _job_key() -> str:
        _, _, key = workflow.info().workflow_id.partition("|")
        return key
