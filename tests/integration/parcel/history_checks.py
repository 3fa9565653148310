"""Walk every history of one ingestion and report what the issue's history checks need."""

from __future__ import annotations

import asyncio
from collections import Counter
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
    sem = asyncio.Semaphore(parallel)

    async def child(wf_id: str) -> None:
        # Every run visibility lists for the child ID, not only the latest: a child that ran
        # twice (a retry as a new run, or a second start) shows up as 2 here.
        async with sem:
            runs = await settled_runs(client, wf_id)
            report.child_runs[wf_id] = len(runs)
            for run in runs:
                report.histories += 1
                async for ev in events(client, wf_id, run):
                    report.see(ev)

    await asyncio.gather(*(child(w) for w in report.child_started))
    return report
