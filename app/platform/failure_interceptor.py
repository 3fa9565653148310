"""The worker side of the failure inbox: it only adds what the worker alone knows.

The poller finds every failure from visibility and history; what those cannot tell is the owning
team, which lives on the workflow class (its domain). When a run fails for good, the interceptor
upserts it into the run's memo, which visibility returns with the run. It never changes the
outcome (the same exception is raised again), never waits on anything (a memo upsert is one
command in the failing task), and does the same on replay, so histories stay deterministic.
A retried attempt, a cancellation, or a plain Python exception (a workflow-task failure, which
the server reports as a problem) gets nothing.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, CancelledError, FailureError
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from app.platform.domain import workflow_domain

MEMO_KEY = "haul.failure"


def is_final(err: FailureError, info: workflow.Info) -> bool:
    """Whether the server will not retry this run after `err` (its last attempt)."""
    if isinstance(err, ApplicationError) and err.non_retryable:
        return True
    policy = info.retry_policy
    if policy is None:
        return True
    if policy.maximum_attempts and info.attempt >= policy.maximum_attempts:
        return True
    kind = err.type if isinstance(err, ApplicationError) else None
    return kind is not None and kind in (policy.non_retryable_error_types or [])


class _EnrichingInbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            return await self.next.execute_workflow(input)
        except FailureError as err:
            if not isinstance(err, CancelledError):
                domain = workflow_domain(input.type)
                if domain is not None and is_final(err, workflow.info()):
                    workflow.upsert_memo({MEMO_KEY: {"team": domain.team}})
            raise


class FailureInterceptor(Interceptor):
    """Tags a run that fails for good with its owning team (see the module docstring)."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _EnrichingInbound
