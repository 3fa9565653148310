"""Reading workflow histories back: every run of an ID, and the activity inputs they hold.

Tests and benchmarks check exactly-once claims against what the server recorded, not against
what the code believes it did.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client


async def run_ids(client: Client, workflow_id: str) -> list[str]:
    """Every run of a workflow ID that visibility knows, oldest first."""
    runs = [
        (wf.start_time, wf.run_id)
        async for wf in client.list_workflows(f'WorkflowId = "{workflow_id}"')
    ]
    return [run for _, run in sorted(runs)]


async def events(client: Client, workflow_id: str, run_id: str) -> AsyncIterator[HistoryEvent]:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    async for event in handle.fetch_history_events():
        yield event


async def scheduled_activity_inputs(
    client: Client, workflow_id: str, run_id: str, activity_type: str, as_type: type
) -> list[Any]:
    """Decoded first argument of every scheduled activity of one type, in history order."""
    out = []
    async for event in events(client, workflow_id, run_id):
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            continue
        attrs = event.activity_task_scheduled_event_attributes
        if attrs.activity_type.name != activity_type:
            continue
        [value] = await client.data_converter.decode(attrs.input.payloads[:1], [as_type])
        out.append(value)
    return out
