"""Action accounting: what the server counted against what workflow histories say it should.

The server's `action` counter (read with the shared ActionReader) is the primary measure. After
a run has gone quiet, every workflow run the harness touched is listed and its history is
tallied into the action types that histories show. Queries are not in history, so the harness
counts them with a client interceptor; heartbeats are taken from the server alone. Any type
whose two counts differ by more than the tolerance is flagged, and so is any type the server
counted that neither histories, the client nor the known server-only list explain: an action
nobody can account for is a billing surprise, not a footnote.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    QueryWorkflowInput,
)

from app.loadtest.models import Comparison
from app.loadtest.settings import TOLERANCE_PCT

# Signals the harness sends carry this key in their payload, naming the API that sent them,
# so a history tells a signal-with-start from a plain signal.
VIA_KEY = "via"
VIA_SIGNAL_WITH_START = "signal_with_start"

_SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
_CHILD_INITIATED = EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
# A child start is billed twice: the command, and this second type beside it.
CHILD_EXTRA = "command_StartChildWorkflowExecution_Extra"
# One history event -> one action of this type.
_EVENT_ACTIONS: dict[int, str] = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED: "command_ScheduleActivityTask",
    EventType.EVENT_TYPE_TIMER_STARTED: "command_StartTimer",
    EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED: (
        "command_StartChildWorkflowExecution"
    ),
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: (
        "command_ContinueAsNewWorkflowExecution"
    ),
    EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED: (
        "command_SignalExternalWorkflowExecution"
    ),
    EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: (
        "command_UpsertWorkflowSearchAttributes"
    ),
    EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED: "command_ModifyWorkflowProperties",
}

# Every type a history (or the harness's query interceptor) can account for.
HISTORY_TYPES = frozenset(
    {
        *_EVENT_ACTIONS.values(),
        "grpc_StartWorkflowExecution",
        "grpc_SignalWithStartWorkflowExecution",
        "grpc_SignalWorkflowExecution",
        "activity_retry",
        "command_BatchMarkers",
        CHILD_EXTRA,
    }
)
CLIENT_TYPES = frozenset({"grpc_QueryWorkflow"})
# Billed, yet never in a history and not counted by the client: listed, not compared.
SERVER_ONLY_TYPES = frozenset({"grpc_RecordActivityTaskHeartbeat"})


def _signal_via(event: HistoryEvent) -> str | None:
    """The `via` label the harness put in a signal's payload, if any."""
    payloads = event.workflow_execution_signaled_event_attributes.input.payloads
    if not payloads or payloads[0].metadata.get("encoding") != b"json/plain":
        return None
    try:
        body = json.loads(payloads[0].data)
    except ValueError:
        return None
    inner = body.get("payload") if isinstance(body, dict) else None
    return inner.get(VIA_KEY) if isinstance(inner, dict) else None


def tally_history(events: Iterable[HistoryEvent]) -> Counter[str]:
    """The billable actions one run's history accounts for, by action_type."""
    counts: Counter[str] = Counter()
    events = list(events)
    marker_tasks: set[int] = set()
    sws_signal = -1  # index of the signal a signal-with-start wrote with the start
    for i, event in enumerate(events):
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = event.workflow_execution_started_event_attributes
            if attrs.HasField("parent_workflow_execution"):
                continue  # billed to the parent's StartChildWorkflowExecution command
            if attrs.continued_execution_run_id and attrs.initiator in (
                ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW,
                ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_RETRY,
                ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE,
            ):
                continue  # continue-as-new is billed to the previous run; retries and crons
            # A plain start writes its first workflow task with the started event; a
            # signal-with-start writes its signal in between. That signal is the one action.
            nxt = events[i + 1] if i + 1 < len(events) else None
            if nxt is not None and nxt.event_type == _SIGNALED:
                sws_signal = i + 1
            else:
                counts["grpc_StartWorkflowExecution"] += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            attrs_s = event.workflow_execution_signaled_event_attributes
            if attrs_s.HasField("external_workflow_execution"):
                continue  # billed to the sender's SignalExternalWorkflowExecution command
            # Later signals can come from either API: the harness's payloads name theirs.
            if i == sws_signal or _signal_via(event) == VIA_SIGNAL_WITH_START:
                counts["grpc_SignalWithStartWorkflowExecution"] += 1
            else:
                counts["grpc_SignalWorkflowExecution"] += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            # Only the last attempt is in history; its attempt number says how many came before.
            retries = event.activity_task_started_event_attributes.attempt - 1
            if retries > 0:
                counts["activity_retry"] += retries
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker_tasks.add(
                event.marker_recorded_event_attributes.workflow_task_completed_event_id
            )
        elif kind in _EVENT_ACTIONS:
            counts[_EVENT_ACTIONS[kind]] += 1
            if kind == _CHILD_INITIATED:
                counts[CHILD_EXTRA] += 1
    if marker_tasks:
        counts["command_BatchMarkers"] += len(marker_tasks)
    return counts


@dataclass
class HistoryTally:
    runs: int = 0
    workflow_ids: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


async def _list_runs(
    client: Client, run_tag: str, since: datetime, roots: frozenset[str]
) -> list[tuple[str, str]]:
    query = f'StartTime >= "{since.strftime("%Y-%m-%dT%H:%M:%SZ")}"'
    return [
        (wf.id, wf.run_id)
        async for wf in client.list_workflows(query, page_size=1000)
        if run_tag in wf.id or wf.id in roots or wf.root_id in roots
    ]


async def tally_runs(
    client: Client,
    run_tag: str,
    since: datetime,
    *,
    roots: Iterable[str] = (),
    concurrency: int = 16,
    settle_checks: int = 2,
    settle_interval: float = 1.0,
) -> HistoryTally:
    """List every run (started at or after since) whose workflow ID carries run_tag, or that
    is one of `roots` or descends from one (IDs the harness cannot tag, such as content
    hashes), and sum their histories. Lists until the count is stable, since visibility lags
    the histories."""
    root_ids = frozenset(roots)
    runs = await _list_runs(client, run_tag, since, root_ids)
    stable = 0
    while stable < settle_checks:
        await asyncio.sleep(settle_interval)
        again = await _list_runs(client, run_tag, since, root_ids)
        stable = stable + 1 if len(again) == len(runs) else 0
        runs = again
    sem = asyncio.Semaphore(concurrency)
    total: Counter[str] = Counter()

    async def one(wf_id: str, run_id: str) -> None:
        async with sem:
            history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
        total.update(tally_history(history.events))

    await asyncio.gather(*(one(w, r) for w, r in runs))
    return HistoryTally(
        runs=len(runs),
        workflow_ids=len({w for w, _ in runs}),
        by_type=dict(sorted(total.items())),
    )


def compare(
    server: Mapping[str, int],
    from_history: Mapping[str, int],
    from_client: Mapping[str, int],
    tolerance_pct: float = TOLERANCE_PCT,
) -> list[Comparison]:
    """Per action_type: server count, expected count and whether they differ beyond tolerance.
    A type the server counted that nothing here explains is flagged as unexplained."""
    rows = []
    for kind in sorted(set(server) | set(from_history) | set(from_client)):
        got = int(server.get(kind, 0))
        if kind in HISTORY_TYPES or kind in CLIENT_TYPES:
            source: Literal["client", "history"] = "client" if kind in CLIENT_TYPES else "history"
            want = int((from_client if kind in CLIENT_TYPES else from_history).get(kind, 0))
            if not got and not want:
                continue
            diff = abs(got - want) / want * 100 if want else 100.0
            rows.append(
                Comparison(
                    action_type=kind,
                    server=got,
                    expected=want,
                    source=source,
                    diff_pct=round(diff, 2),
                    flagged=diff > tolerance_pct,
                )
            )
        else:
            known = kind in SERVER_ONLY_TYPES
            rows.append(
                Comparison(
                    action_type=kind,
                    server=got,
                    expected=None,
                    source="server only" if known else "unexplained",
                    diff_pct=None,
                    flagged=not known,
                )
            )
    return rows


def problems(rows: Iterable[Comparison], tolerance_pct: float = TOLERANCE_PCT) -> list[str]:
    """One line per flagged row: what the server counted against what explains it."""
    out = []
    for row in rows:
        if not row.flagged:
            continue
        if row.expected is None:
            out.append(
                f"{row.action_type}: the server counted {row.server} and no history or client "
                "count explains this type"
            )
        else:
            out.append(
                f"{row.action_type}: the server counted {row.server}, the {row.source} "
                f"explains {row.expected} ({row.diff_pct}% apart, over {tolerance_pct:g}%)"
            )
    return out


class QueryCounter(Interceptor):
    """Client interceptor that counts queries (they are billed but never reach a history)."""

    def __init__(self) -> None:
        self.succeeded = 0
        self.failed = 0

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _QueryCountingOutbound(next, self)


class _QueryCountingOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, counter: QueryCounter) -> None:
        super().__init__(next)
        self._counter = counter

    async def query_workflow(self, input: QueryWorkflowInput) -> Any:
        try:
            result = await super().query_workflow(input)
        except BaseException:
            self._counter.failed += 1
            raise
        self._counter.succeeded += 1
        return result
