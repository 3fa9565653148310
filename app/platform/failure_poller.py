"""The failure poller: finds every failed, timed-out, terminated, cancelled or stuck run.

Visibility is the source that misses nothing: a run that failed while the app database was down,
on a worker with no database, or by a timeout no workflow code can see, is still there. Each pass
lists runs closed since the persisted high-water mark (minus an overlap, because visibility can
trail the close: the full overlap on start and once a minute, a short slack in between), plus
open runs the server marks with `TemporalReportedProblems` (repeated workflow-task failures).
It takes the failure from the close event and the original input from the first event; runs
already recorded are skipped, and the store's unique key makes any repeat a no-op. A failed
attempt that Temporal retries is not a failure yet and is left out (visibility lists it as
Failed; its close event is a continue-as-new to the next attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from google.protobuf import json_format
from pydantic_core import to_jsonable_python
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHistoryEventFilterType,
)

from app.platform.failure_interceptor import MEMO_KEY
from app.platform.failures import CLOSE_STATUSES, STUCK, FailureRecord, FailureStore

log = logging.getLogger("haul.failures.poller")

DEFAULT_OVERLAP = timedelta(minutes=5)
DEFAULT_FIRST_LOOKBACK = timedelta(days=7)
# Histories read at once in a pass.
DEFAULT_CONCURRENCY = 16
# Between full re-listings of the overlap (every DEFAULT_RECHECK), a pass looks back this far.
DEFAULT_SLACK = timedelta(seconds=15)
DEFAULT_RECHECK = timedelta(minutes=1)
_STATUS_NAMES = {
    WorkflowExecutionStatus.FAILED: "Failed",
    WorkflowExecutionStatus.TIMED_OUT: "TimedOut",
    WorkflowExecutionStatus.TERMINATED: "Terminated",
    WorkflowExecutionStatus.CANCELED: "Canceled",
}
STUCK_QUERY = "ExecutionStatus = 'Running' AND TemporalReportedProblems IS NOT NULL"


@dataclass
class PollResult:
    listed: int = 0
    recorded: int = 0
    retried_attempts: int = 0
    errors: list[str] = field(default_factory=list)


def closed_query(since: datetime) -> str:
    statuses = " OR ".join(f"ExecutionStatus = '{s}'" for s in CLOSE_STATUSES)
    return f"({statuses}) AND CloseTime >= '{since.astimezone(UTC).isoformat()}'"


def _chain(failure: Failure) -> list[Failure]:
    chain = [failure]
    while chain[-1].HasField("cause"):
        chain.append(chain[-1].cause)
    return chain


def failure_kind(failure: Failure) -> str:
    """The type a person would group by: the application type, or the failure's kind."""
    if failure.HasField("application_failure_info") and failure.application_failure_info.type:
        return failure.application_failure_info.type
    info = failure.WhichOneof("failure_info") or "failure_info"
    return info.removesuffix("_failure_info").title().replace("_", "") + "Failure"


def describe_failure(failure: Failure) -> tuple[str, str, str]:
    """(root cause type, the chain of messages outermost first, every stack trace)."""
    chain = _chain(failure)
    message = ": ".join(f.message for f in chain if f.message)
    stack = "\n\n".join(f.stack_trace for f in chain if f.stack_trace)
    return failure_kind(chain[-1]), message, stack


def payloads_to_json(payloads: list[Payload]) -> list[dict[str, Any]]:
    return [json_format.MessageToDict(p) for p in payloads]


def payloads_from_json(items: list[dict[str, Any]]) -> list[Payload]:
    return [json_format.ParseDict(item, Payload()) for item in items]


def _close_failure(event: HistoryEvent) -> tuple[str, str, str, bool]:
    """(type, message, stack, retried) of a close event; retried: another attempt follows."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        attrs = event.workflow_execution_failed_event_attributes
        return (*describe_failure(attrs.failure), bool(attrs.new_execution_run_id))
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        attrs_t = event.workflow_execution_timed_out_event_attributes
        return ("TimedOut", "workflow run timed out", "", bool(attrs_t.new_execution_run_id))
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        attrs_x = event.workflow_execution_terminated_event_attributes
        reason = attrs_x.reason or "no reason given"
        return ("Terminated", f"terminated by {attrs_x.identity or 'unknown'}: {reason}", "", False)
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        # A retried attempt: visibility says Failed, its history says a new run follows.
        return ("", "", "", True)
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED:
        return ("Canceled", "workflow run was cancelled", "", False)
    return (EventType.Name(kind), f"run closed with {EventType.Name(kind)}", "", False)


class Poller:
    """One cluster's poller: `poll_once` per pass, `run` as a loop until stopped."""

    def __init__(
        self,
        client: Client,
        store: FailureStore,
        *,
        cluster: str,
        teams: Mapping[str, str] | None = None,
        overlap: timedelta = DEFAULT_OVERLAP,
        first_lookback: timedelta = DEFAULT_FIRST_LOOKBACK,
        concurrency: int = DEFAULT_CONCURRENCY,
        slack: timedelta = DEFAULT_SLACK,
        recheck: timedelta = DEFAULT_RECHECK,
    ) -> None:
        self.client = client
        self.store = store
        self.cluster = cluster
        self.namespace = client.namespace
        self.teams = dict(teams or {})
        self.overlap = overlap
        self.first_lookback = first_lookback
        self.concurrency = concurrency
        self.slack = slack
        self.recheck = recheck
        self._full_at = -float("inf")

    async def poll_once(self) -> PollResult:
        """One pass over closed and stuck runs; advances the high-water mark."""
        result = PollResult()
        now = datetime.now(UTC)
        mark = await asyncio.to_thread(self.store.high_water, self.cluster, self.namespace)
        # The whole overlap is re-listed once per `recheck` (and on a fresh poller); between
        # those, a short slack. Re-listing it every pass costs a listing of every run closed in
        # the window, which at a high failure rate outgrows the pass.
        clock = asyncio.get_running_loop().time()
        full = clock - self._full_at >= self.recheck.total_seconds()
        back = self.overlap if full else min(self.slack, self.overlap)
        since = (mark - back) if mark else now - self.first_lookback
        closed = [wf async for wf in self.client.list_workflows(closed_query(since))]
        stuck = [wf async for wf in self.client.list_workflows(STUCK_QUERY)]
        result.listed = len(closed) + len(stuck)
        done = await asyncio.to_thread(
            partial(self.store.recorded_keys, closed=True),
            self.cluster,
            self.namespace,
            [w.run_id for w in closed],
        )
        seen_stuck = await asyncio.to_thread(
            self.store.recorded_keys, self.cluster, self.namespace, [w.run_id for w in stuck]
        )
        records: list[FailureRecord] = []
        failed_closes: list[datetime] = []
        todo = [w for w in closed if w.run_id not in done] + [
            w for w in stuck if w.run_id not in seen_stuck
        ]
        # Histories are read a few at a time: one by one, a pass falls behind a burst.
        slots = asyncio.Semaphore(self.concurrency)

        async def read(wf: WorkflowExecution) -> FailureRecord | None | Exception:
            async with slots:
                try:
                    return await self._record_for(wf)
                except Exception as exc:  # one unreadable run must not stop the pass
                    return exc

        for wf, rec in zip(todo, await asyncio.gather(*(read(w) for w in todo)), strict=True):
            if isinstance(rec, Exception):
                result.errors.append(f"{wf.id} run {wf.run_id}: {rec}")
                log.warning(
                    "cannot read failed run", extra={"workflow_id": wf.id, "error": str(rec)}
                )
                if wf.close_time:
                    failed_closes.append(wf.close_time)
            elif rec is None:
                result.retried_attempts += 1
            else:
                records.append(rec)
        result.recorded = await asyncio.to_thread(self.store.record_many, records)
        # Never move past a run that could not be read: the next pass retries it.
        closes = [w.close_time for w in closed if w.close_time]
        if failed_closes:
            new_mark: datetime | None = min(failed_closes) - timedelta(microseconds=1)
        else:
            new_mark = max(closes) if closes else None
        if new_mark is not None:
            await asyncio.to_thread(self.store.advance, self.cluster, self.namespace, new_mark)
        if full:
            self._full_at = clock
        return result

    async def _record_for(self, wf: WorkflowExecution) -> FailureRecord | None:
        handle = self.client.get_workflow_handle(wf.id, run_id=wf.run_id)
        first: HistoryEvent | None = None
        last_task_failure: Failure | None = None
        if wf.close_time is None:  # stuck: the newest workflow-task failure is the cause
            async for event in handle.fetch_history_events():
                first = first or event
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                    last_task_failure = event.workflow_task_failed_event_attributes.failure
            error_type, message, stack = (
                describe_failure(last_task_failure)
                if last_task_failure is not None
                else ("Stuck", "the server reports problems with this run", "")
            )
            status = STUCK
        else:
            async for event in handle.fetch_history_events(page_size=1):
                first = event
                break
            async for event in handle.fetch_history_events(
                event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
            ):
                error_type, message, stack, retried = _close_failure(event)
                if retried:
                    return None
            status = _STATUS_NAMES.get(wf.status, "Failed") if wf.status else "Failed"
        if first is None:
            raise ValueError("history has no events (past retention?)")
        started = first.workflow_execution_started_event_attributes
        payloads = list(started.input.payloads)
        try:
            arguments = to_jsonable_python(list(await self.client.data_converter.decode(payloads)))
        except Exception as exc:  # keep the payloads: redrive needs only those
            arguments = [f"<cannot decode input: {exc}>"]
        memo = await wf.memo() if wf.raw_info.memo.fields else {}
        found = memo.get(MEMO_KEY)
        enrich: dict[str, Any] = found if isinstance(found, dict) else {}
        parent = started.parent_workflow_execution
        return FailureRecord(
            cluster=self.cluster,
            namespace=self.namespace,
            workflow_id=wf.id,
            run_id=wf.run_id,
            workflow_type=wf.workflow_type,
            task_queue=wf.task_queue,
            owner_team=str(enrich.get("team") or self.teams.get(wf.task_queue, "")),
            close_status=status,
            arguments=arguments,
            input_payloads=payloads_to_json(payloads),
            error_type=error_type,
            error_message=message,
            failure_stack=stack,
            attempt=started.attempt or 1,
            parent_workflow_id=parent.workflow_id or None,
            parent_run_id=parent.run_id or None,
            failed_at=wf.close_time or datetime.now(UTC),
        )

    async def run(self, stop: asyncio.Event, interval: float = 10.0) -> None:
        """Poll every `interval` seconds until `stop` is set; a failed pass is logged, not fatal."""
        while not stop.is_set():
            try:
                res = await self.poll_once()
                if res.recorded or res.errors:
                    log.info(
                        "failure poll",
                        extra={
                            "cluster": self.cluster,
                            "recorded": res.recorded,
                            "errors": len(res.errors),
                        },
                    )
            except Exception as exc:
                log.warning(
                    "failure poll failed", extra={"cluster": self.cluster, "error": str(exc)}
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
