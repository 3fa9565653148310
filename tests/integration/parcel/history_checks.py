"""Walk every history of one ingestion and report what the issue's history checks need."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from app.platform.history import events, run_ids

E = EventType


@dataclass
class HistoryReport:
    splitter_runs: int = 0
    largest_event: int = 0  # bytes; bounds every payload the event holds
    largest_event_type: str = ""
    child_started: Counter[str] = field(default_factory=Counter)
    child_completed: Counter[str] = field(default_factory=Counter)
    child_failed: Counter[str] = field(default_factory=Counter)
    child_terminated: Counter[str] = field(default_factory=Counter)
    child_runs: Counter[str] = field(default_factory=Counter)
    histories: int = 0

    def see(self, event: object) -> None:
        size = event.ByteSize()  # type: ignore[attr-defined]
        if size > self.largest_event:
            self.largest_event = size
            self.largest_event_type = E.Name(event.event_type)  # type: ignore[attr-defined]


async def settled_runs(client: Client, workflow_id: str) -> list[str]:
    """Every run of an ID, once visibility lists them all as closed."""
    runs: list[str] = []
    for _ in range(150):
        runs = await run_ids(client, workflow_id)
        described = [await client.get_workflow_handle(workflow_id, run_id=r).describe()
                     for r in runs]
        # every run closed, and the last one completed rather than continued as new
        last = described[-1].status if described else None
        if all(d.close_time is not None for d in described) and last and (
            last.name != "CONTINUED_AS_NEW"
        ):
            return runs
        await asyncio.sleep(0.2)
    return runs


async def walk(client: Client, splitter_id: str, parallel: int = 16) -> HistoryReport:
    report = HistoryReport()
    runs = await settled_runs(client, splitter_id)
    report.splitter_runs = len(runs)
    for run in runs:
        report.histories += 1
        async for ev in events(client, splitter_id, run):
            report.see(ev)
            t = ev.event_type
            if t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                report.child_started[
                    ev.child_workflow_execution_started_event_attributes.workflow_execution.workflow_id
                ] += 1
            elif t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED:
                report.child_completed[
                    ev.child_workflow_execution_completed_event_attributes.workflow_execution.workflow_id
                ] += 1
            elif t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED:
                report.child_failed[
                    ev.child_workflow_execution_failed_event_attributes.workflow_execution.workflow_id
                ] += 1
            elif t == E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED:
                report.child_terminated[
                    ev.child_workflow_execution_terminated_event_attributes.workflow_execution.workflow_id
                ] += 1
    # Every run visibility lists for each child ID, not only the latest: a child that ran
    # twice (a retry as a new run, or a second start) shows up as 2 here.
    child_runs = await closed_runs_by_prefix(client, report.child_started)
    report.child_runs = Counter(wf_id for wf_id, _ in child_runs)
    sem = asyncio.Semaphore(parallel)

    async def child(wf_id: str, run_id: str) -> None:
        async with sem:
            report.histories += 1
            async for ev in events(client, wf_id, run_id):
                report.see(ev)

    await asyncio.gather(*(child(w, r) for w, r in child_runs))
    return report


async def closed_runs_by_prefix(
    client: Client, workflow_ids: Iterable[str], deadline: float = 300.0
) -> list[tuple[str, str]]:
    """(workflow ID, run ID) of every run visibility lists under the IDs' common prefix, once
    each ID has a run there and all of them are closed (visibility is eventually consistent).
    One paged query instead of one per child."""
    wanted = set(workflow_ids)
    if not wanted:
        return []
    prefix = os.path.commonprefix(sorted(wanted))
    query = f'WorkflowId STARTS_WITH "{prefix}"'
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        listed = [
            (wf.id, wf.run_id, wf.close_time is not None)
            async for wf in client.list_workflows(query)
        ]
        runs = [(i, r) for i, r, _ in listed if i in wanted]
        if wanted <= {i for i, _ in runs} and all(closed for *_, closed in listed):
            return runs
        if loop.time() > end:
            missing = len(wanted - {i for i, _ in runs})
            raise TimeoutError(
                f"after {deadline}s visibility still lacks {missing} child IDs or lists open runs"
            )
        await asyncio.sleep(0.5)
