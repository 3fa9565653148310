"""The operator's side of handoff: which workflows opt in, and asking one run to hand off.

A run is asked by the `handoff` update, so the answer comes from the run itself: an opted-in
run accepts (and hands off after its current unit of work); a run of a type that did not opt
in has no such handler and is refused with a message that says what to do instead.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from app.platform.discovery import Discovered, workflow_type_name
from app.platform.handoff import Handoff
from app.platform.handoff_models import HANDOFF_UPDATE, HandoffAck, HandoffRequest

OPEN = "ExecutionStatus = 'Running'"


class HandoffRefusedError(RuntimeError):
    """A run that will not hand off; the message names it, why, and what to do."""


def opted_in_types(discovered: Discovered) -> set[str]:
    """Names of the discovered workflow types that can hand off."""
    return {
        workflow_type_name(cls)
        for reg in discovered.queues.values()
        for cls in reg.workflows
        if issubclass(cls, Handoff)
    }


def not_opted_in(workflow_id: str, workflow_type: str) -> HandoffRefusedError:
    return HandoffRefusedError(
        f"{workflow_id} is a {workflow_type}, which does not opt in to handoff: let it drain "
        "(`haul migrate drain --wait`), or mix app.platform.handoff.Handoff into its workflow "
        "class (retry_on_signal entities have it) and deploy that first"
    )


async def request_handoff(
    client: Client,
    workflow_id: str,
    request: HandoffRequest,
    *,
    opted_in: Collection[str] | None = None,
    timeout: timedelta = timedelta(seconds=30),
) -> HandoffAck:
    """Ask the open run of `workflow_id` on `client`'s cluster to hand off.

    `opted_in` (type names) refuses other types without asking the run; either way a run
    without the handler refuses. HandoffRefusedError says why.
    """
    handle = client.get_workflow_handle(workflow_id)
    try:
        desc = await handle.describe(rpc_timeout=timeout)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        raise HandoffRefusedError(
            f"{workflow_id} has no run on {request.from_cluster!r}: nothing to hand off"
        ) from None
    if desc.status != WorkflowExecutionStatus.RUNNING:
        status = desc.status.name.lower() if desc.status else "closed"
        raise HandoffRefusedError(
            f"{workflow_id} is {status} on {request.from_cluster!r}: nothing to hand off"
        )
    if opted_in is not None and desc.workflow_type not in opted_in:
        raise not_opted_in(workflow_id, desc.workflow_type)
    try:
        ack: HandoffAck = await client.get_workflow_handle(
            workflow_id, run_id=desc.run_id
        ).execute_update(HANDOFF_UPDATE, request, result_type=HandoffAck, rpc_timeout=timeout)
        return ack
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        if isinstance(cause, ApplicationError) and "not found" in cause.message:
            raise not_opted_in(workflow_id, desc.workflow_type) from None
        raise HandoffRefusedError(f"{workflow_id} refused handoff: {cause}") from None


async def open_runs(client: Client, types: Collection[str] = ()) -> list[tuple[str, str]]:
    """(workflow ID, type) of every open run, optionally of the given types only."""
    query = OPEN
    if types:
        query += " AND WorkflowType IN (" + ", ".join(f"'{t}'" for t in sorted(types)) + ")"
    return [(wf.id, wf.workflow_type) async for wf in client.list_workflows(query)]
