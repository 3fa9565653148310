"""Workflows that fail on purpose, for the failure-inbox tests (registered on a fresh queue)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError


@dataclass
class FailInput:
    message: str
    error_type: str = "TestFailure"
    # A plain Python exception fails the workflow *task*, so the run stays open (stuck).
    plain: bool = False
    # Wait for this many "go" signals before failing (for reset redrive tests).
    signals: int = 0


@workflow.defn
class FailingWorkflow:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.run
    async def run(self, input: FailInput) -> str:
        await workflow.wait_condition(lambda: len(self.seen) >= input.signals)
        if input.plain:
            raise RuntimeError(input.message)
        raise ApplicationError(input.message, type=input.error_type)

    @workflow.signal
    def go(self, value: str) -> None:
        self.seen.append(value)


@workflow.defn(name="FailingWorkflow")
class FixedFailingWorkflow:
    """FailingWorkflow after its bug is fixed: the worker a redrive runs on. It waits for the
    same signals, so a reset run that gets none re-applied stays open."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @workflow.run
    async def run(self, input: FailInput) -> str:
        await workflow.wait_condition(lambda: len(self.seen) >= input.signals)
        return f"fixed: {input.message}" + "".join(f" +{s}" for s in self.seen)

    @workflow.signal
    def go(self, value: str) -> None:
        self.seen.append(value)


@workflow.defn
class ParentWorkflow:
    @workflow.run
    async def run(self, input: FailInput) -> str:
        return await workflow.execute_child_workflow(
            FailingWorkflow.run,
            input,
            id=f"{workflow.info().workflow_id}-child",
            execution_timeout=timedelta(minutes=5),
        )


FAILURE_WORKFLOWS = [FailingWorkflow, ParentWorkflow]
