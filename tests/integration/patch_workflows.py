"""Two otherwise equal workflows, one of which calls `workflow.patched`, to bill the marker."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="HaulTestPatched")
class PatchedWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "new" if workflow.patched("haul-test-patch") else "old"


@workflow.defn(name="HaulTestUnpatched")
class UnpatchedWorkflow:
    @workflow.run
    async def run(self) -> str:
        return "plain"
