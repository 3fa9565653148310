"""The drain monitor: what is still open on the old cluster, and what will never close alone.

Counts come from visibility (eventually consistent, seconds behind); the estimate divides what
is open by the rate at which runs closed over the recent window, so it is a forecast, not a
promise. A run "will not drain by itself" when it is older than a threshold, or when it is a
retry_on_signal entity that received an event within the window (it loops while events keep
coming): those need their senders routed away first, or a handoff.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client

from app.platform.discovery import Discovered, workflow_type_name
from app.platform.retry_on_signal import RetryOnSignal

OPEN = "ExecutionStatus = 'Running'"
# Upper bounds of the age buckets, and their labels; older runs fall in the last label.
AGE_BUCKETS: tuple[tuple[timedelta, str], ...] = (
    (timedelta(minutes=1), "<1m"),
    (timedelta(minutes=10), "<10m"),
    (timedelta(hours=1), "<1h"),
    (timedelta(days=1), "<1d"),
)
OLDEST_BUCKET = ">=1d"


def entity_types(discovered: Discovered) -> set[str]:
    """Names of the discovered retry_on_signal entity workflows."""
    return {
        workflow_type_name(cls)
        for reg in discovered.queues.values()
        for cls in reg.workflows
        if issubclass(cls, RetryOnSignal)
    }


def age_bucket(age: timedelta) -> str:
    """The label of the age bucket `age` falls in."""
    for bound, label in AGE_BUCKETS:
        if age < bound:
            return label
    return OLDEST_BUCKET


@dataclass
class OpenGroup:
    """Open runs of one workflow type on one task queue, by age bucket."""

    workflow_type: str
    task_queue: str
    count: int = 0
    ages: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class Stuck:
    """An open run that will not close by itself, and why."""

    workflow_id: str
    workflow_type: str
    age: timedelta
    reason: str


@dataclass
class DrainReport:
    """The old cluster's open runs, the recent close rate and the forecast."""

    open_total: int
    groups: list[OpenGroup]
    closed_in_window: int
    window: timedelta
    stuck: list[Stuck]
    # False when more runs were open than `limit` listed (counts stay exact).
    listed_all: bool = True
    # Runs handed off from this cluster (app/platform/handoff.py), and those of them whose
    # continuation has not started on the new cluster yet.
    handed_off: int = 0
    handoffs_in_flight: int = 0

    @property
    def estimate(self) -> timedelta | None:
        """Time to drain at the recent close rate; None when nothing closed in the window."""
        if self.open_total == 0:
            return timedelta(0)
        if self.closed_in_window == 0:
            return None
        return self.window * (self.open_total / self.closed_in_window)


async def _last_signal(client: Client, workflow_id: str, run_id: str) -> datetime | None:
    """When the run last received a signal (newest events first, one page)."""
    resp = await client.workflow_service.get_workflow_execution_history_reverse(
        GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace,
            execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            maximum_page_size=100,
        )
    )
    for event in resp.history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            return event.event_time.ToDatetime(tzinfo=UTC)
    return None


async def report(
    client: Client,
    *,
    entity_types: Collection[str] = (),
    older_than: timedelta = timedelta(hours=6),
    window: timedelta = timedelta(minutes=5),
    limit: int = 10_000,
    now: datetime | None = None,
    handoffs: Mapping[str, int] | None = None,
) -> DrainReport:
    """What is open on `client`'s namespace; `entity_types` are retry_on_signal types;
    `handoffs` counts handoffs away from it by status (HandoffStore.counts)."""
    now = now or datetime.now(UTC)
    total = (await client.count_workflows(OPEN)).count
    since = (now - window).isoformat()
    closed = (
        await client.count_workflows(f"ExecutionStatus != 'Running' AND CloseTime > '{since}'")
    ).count
    groups: dict[tuple[str, str], OpenGroup] = {}
    stuck: list[Stuck] = []
    listed = 0
    async for wf in client.list_workflows(OPEN, limit=limit):
        listed += 1
        age = now - wf.start_time
        group = groups.setdefault(
            (wf.workflow_type, wf.task_queue), OpenGroup(wf.workflow_type, wf.task_queue)
        )
        group.count += 1
        group.ages[age_bucket(age)] += 1
        if age >= older_than:
            stuck.append(Stuck(wf.id, wf.workflow_type, age, f"open for over {older_than}"))
        elif wf.workflow_type in entity_types:
            last = await _last_signal(client, wf.id, wf.run_id)
            if last is not None and now - last < window:
                stuck.append(
                    Stuck(
                        wf.id,
                        wf.workflow_type,
                        age,
                        f"entity still receiving events ({last:%H:%M:%S})",
                    )
                )
    return DrainReport(
        open_total=total,
        groups=sorted(groups.values(), key=lambda g: (-g.count, g.workflow_type, g.task_queue)),
        closed_in_window=closed,
        window=window,
        stuck=stuck,
        listed_all=listed >= total,
        handed_off=sum((handoffs or {}).values()),
        handoffs_in_flight=sum(n for s, n in (handoffs or {}).items() if s != "resumed"),
    )
