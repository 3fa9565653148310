"""Preconditions of migration transitions that need a live cluster.

The CLI gathers these and hands them to `phases.transition` as `Facts`, which decides and says
why a transition is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeTaskQueueRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from app.platform.discovery import Discovered
from app.platform.phases import Facts


async def _has_pollers(client: Client, queue: str, kind: TaskQueueType.ValueType) -> bool:
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue), task_queue_type=kind
        )
    )
    return bool(resp.pollers)


async def missing_pollers(client: Client, discovered: Discovered) -> list[str]:
    """Task queues of the app that no worker polls on this cluster (DescribeTaskQueue).

    A queue with workflows needs a workflow poller, one with activities an activity poller;
    a missing one is named `queue (workflow)` or `queue (activity)`.
    """
    missing = []
    for name, reg in sorted(discovered.queues.items()):
        wanted = []
        if reg.workflows:
            wanted.append(("workflow", TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        if reg.activity_classes:
            wanted.append(("activity", TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY))
        for label, kind in wanted:
            if not await _has_pollers(client, name, kind):
                missing.append(f"{name} ({label})")
    return missing


async def missing_namespaces(client: Client, namespaces: Mapping[str, Iterable[str]]) -> list[str]:
    """Namespaces (`ns`) and custom search attributes (`ns:attr`) this cluster lacks."""
    missing = []
    for namespace, attributes in sorted(namespaces.items()):
        try:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace)
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            missing.append(namespace)
            continue
        wanted = set(attributes)
        if not wanted:
            continue
        have = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
        missing += [f"{namespace}:{a}" for a in sorted(wanted - set(have.custom_attributes))]
    return missing


async def open_workflows(client: Client) -> int:
    """Open workflows in the client's namespace (visibility: eventually consistent)."""
    return (await client.count_workflows("ExecutionStatus = 'Running'")).count


async def facts(
    old: Client,
    new: Client,
    discovered: Discovered,
    namespaces: Mapping[str, Iterable[str]],
) -> Facts:
    """Every live-cluster fact a transition may need."""
    return Facts(
        missing_task_queues=tuple(await missing_pollers(new, discovered)),
        missing_namespaces=tuple(await missing_namespaces(new, namespaces)),
        open_on_old=await open_workflows(old),
    )
