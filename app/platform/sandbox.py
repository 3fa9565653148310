"""The workflow sandbox as haul configures it.

The SDK's sandbox re-imports, for every workflow run, each module the workflow's module pulls
in that is not passed through. Profiled under load (loadtest/PROFILE.md) that re-import was
half of the worker's Python CPU: `app.platform.domain` (a dataclass and the decorators) and
the domain packages ran again per run. The modules passed through here are deterministic and
hold no state a workflow could change: declarations, pure ID helpers, carrier-file parsing
and the version pins. Workflow modules themselves stay sandboxed (and `retry_on_signal`, whose
code runs inside workflows), so the sandbox still checks what workflow code calls.

`WorkflowSandbox` (HAUL_WORKFLOW_SANDBOX) chooses per worker:
- `default`: the sandbox with these modules passed through; workflows marked
  `sandboxed=False` (proven by the replay tier, see tests/unit/test_unsandboxed.py) run
  without one;
- `all`: the same sandbox for every workflow, marked ones included;
- `strict`: the SDK's own restrictions for every workflow: the most checking, the most CPU.
  Use it to chase a suspected non-determinism.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum

from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSTHROUGH_MODULES = (
    "app.core",
    "app.formats",
    "app.versions",
    "app.platform.domain",
    "app.platform.ids",
)


class WorkflowSandbox(StrEnum):
    DEFAULT = "default"
    ALL = "all"
    STRICT = "strict"


def restrictions() -> SandboxRestrictions:
    """The SDK's default restrictions plus haul's deterministic modules passed through."""
    return SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH_MODULES)


def runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=restrictions())


def with_passthrough(existing: WorkflowRunner | None) -> WorkflowRunner:
    """The plugin's hook: give an SDK-default sandbox haul's passthrough; keep any other
    runner a caller chose (a strict sandbox, an unsandboxed runner) as it is."""
    if existing is None:
        return runner()
    if (
        isinstance(existing, SandboxedWorkflowRunner)
        and existing.restrictions is SandboxRestrictions.default
    ):
        return dataclasses.replace(existing, restrictions=restrictions())
    return existing


def worker_runners(mode: WorkflowSandbox) -> dict[str, WorkflowRunner]:
    """Worker keyword arguments for a mode (none for `default`: the plugin sets it up)."""
    if mode is WorkflowSandbox.ALL:
        return {"unsandboxed_workflow_runner": runner()}
    if mode is WorkflowSandbox.STRICT:
        # A copy, not SandboxRestrictions.default itself, so the plugin leaves it alone.
        strict = SandboxedWorkflowRunner(
            restrictions=dataclasses.replace(SandboxRestrictions.default)
        )
        return {"workflow_runner": strict, "unsandboxed_workflow_runner": strict}
    return {}
