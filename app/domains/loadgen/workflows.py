"""Load-generation workflows: one no-op activity, and one timer."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from app.domains.loadgen import DOMAIN
    from app.domains.loadgen.activities import LoadgenActivities
    from app.domains.loadgen.models import NoopInput, TimerInput


# Not sandboxed, as the Go SDK's worker is not: these run by the thousand in load tests, where
# the sandbox's per-run module import would be most of the worker's CPU (loadtest/PROFILE.md).
# They call workflow APIs only; the replay tier and tests/unit/test_unsandboxed.py hold that.
@DOMAIN.workflow(sandboxed=False)
class NoopActivityWorkflow:
    """Start, one no-op activity, complete: 2 billable actions."""

    @workflow.run
    async def run(self, input: NoopInput) -> None:
        await workflow.execute_activity_method(
            LoadgenActivities.noop, start_to_close_timeout=timedelta(seconds=30)
        )


@DOMAIN.workflow(sandboxed=False)
class TimerWorkflow:
    """Start, one timer, complete: 2 billable actions, and a call that stays in flight."""

    @workflow.run
    async def run(self, input: TimerInput) -> None:
        await workflow.sleep(timedelta(seconds=input.seconds))
