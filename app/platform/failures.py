"""The failure store: every terminal workflow failure or timeout, with its original arguments.

Two paths fill it, and both upsert on (workflow_id, run_id):
- a worker interceptor records a workflow that is about to fail, through a local activity,
  with the arguments it was started with;
- `sweep` reads visibility for runs that timed out or were terminated (a workflow cannot see
  its own timeout) and takes their arguments from the first history event.
`redrive` starts the same workflow type again under the same ID, with the same arguments;
task workflows allow that because their reuse policy is ALLOW_DUPLICATE_FAILED_ONLY.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg.rows import dict_row
from pydantic import BaseModel
from pydantic_core import to_jsonable_python
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.exceptions import CancelledError, FailureError
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

if TYPE_CHECKING:
    from app.platform.router import ClusterRouter

RECORD_ACTIVITY = "haul_record_workflow_failure"


class FailureRecord(BaseModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    task_queue: str
    namespace: str
    arguments: list[Any]
    error_type: str
    error_message: str


class StoredFailure(FailureRecord):
    id: int
    failed_at: datetime
    redriven_at: datetime | None = None
    redrive_run_id: str | None = None


@dataclass
class FailureStore:
    dsn: str

    def record(self, rec: FailureRecord) -> None:
        with psycopg.connect(self.dsn) as conn:
            conn.execute(
                """insert into workflow_failures (workflow_id, run_id, workflow_type, task_queue,
                       namespace, arguments, error_type, error_message)
                   values (%s, %s, %s, %s, %s, %s, %s, %s)
                   on conflict (workflow_id, run_id) do update
                   set error_type = excluded.error_type, error_message = excluded.error_message""",
                (
                    rec.workflow_id,
                    rec.run_id,
                    rec.workflow_type,
                    rec.task_queue,
                    rec.namespace,
                    json.dumps(rec.arguments),
                    rec.error_type,
                    rec.error_message,
                ),
            )

    def list(self, *, open_only: bool = True, limit: int = 100) -> list[StoredFailure]:
        where = "where redriven_at is null" if open_only else ""
        with psycopg.connect(self.dsn, row_factory=dict_row) as conn:
            rows = conn.execute(
                f"select * from workflow_failures {where} order by id desc limit %s", (limit,)
            ).fetchall()
        return [StoredFailure.model_validate(r) for r in rows]

    def get(self, failure_id: int) -> StoredFailure:
        with psycopg.connect(self.dsn, row_factory=dict_row) as conn:
            row = conn.execute(
                "select * from workflow_failures where id = %s", (failure_id,)
            ).fetchone()
        if row is None:
            raise KeyError(f"no failure with id {failure_id}; `haul failures list` shows them")
        return StoredFailure.model_validate(row)

    def mark_redriven(self, failure_id: int, run_id: str) -> None:
        with psycopg.connect(self.dsn) as conn:
            conn.execute(
                "update workflow_failures set redriven_at = now(), redrive_run_id = %s "
                "where id = %s",
                (run_id, failure_id),
            )


class FailureActivities:
    """The local activity the interceptor calls; registered on every task queue."""

    def __init__(self, store: FailureStore | None) -> None:
        self.store = store

    @activity.defn(name=RECORD_ACTIVITY)
    async def record(self, rec: FailureRecord) -> None:
        if self.store is None:
            activity.logger.error(
                "no HAUL_DATABASE_URL: workflow failure not stored",
                extra={"failed_workflow_id": rec.workflow_id, "error": rec.error_message},
            )
            return
        self.store.record(rec)


def describe(err: BaseException) -> tuple[str, str]:
    """The root cause's type name and the whole chain of messages, outermost first."""
    chain = []
    root: BaseException = err
    current: BaseException | None = err
    while current is not None:
        chain.append(str(current))
        root = current
        current = current.__cause__
    return getattr(root, "type", None) or type(root).__name__, ": ".join(chain)


class _RecordingInbound(WorkflowInboundInterceptor):
    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        try:
            return await self.next.execute_workflow(input)
        except FailureError as err:
            if isinstance(err, CancelledError):
                raise
            info = workflow.info()
            error_type, message = describe(err)
            await workflow.execute_local_activity(
                RECORD_ACTIVITY,
                FailureRecord(
                    workflow_id=info.workflow_id,
                    run_id=info.run_id,
                    workflow_type=info.workflow_type,
                    task_queue=info.task_queue,
                    namespace=info.namespace,
                    arguments=to_jsonable_python(list(input.args)),
                    error_type=error_type,
                    error_message=message,
                ),
                start_to_close_timeout=timedelta(seconds=30),
            )
            raise


class FailureInterceptor(Interceptor):
    """Records every workflow that fails for good into the failure store."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _RecordingInbound


SWEPT_STATUSES = ("TimedOut", "Terminated")


async def sweep(client: Client, store: FailureStore, since: datetime) -> int:
    """Record runs closed as timed out or terminated since `since`; return how many."""
    query = (
        "(" + " OR ".join(f"ExecutionStatus = '{s}'" for s in SWEPT_STATUSES) + ")"
        f" AND CloseTime > '{since.isoformat()}'"
    )
    count = 0
    async for wf in client.list_workflows(query):
        handle = client.get_workflow_handle(wf.id, run_id=wf.run_id)
        arguments: list[Any] = []
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                attrs = event.workflow_execution_started_event_attributes
                arguments = list(await client.data_converter.decode(attrs.input.payloads))
                break
        status = wf.status.name if wf.status else "UNKNOWN"
        store.record(
            FailureRecord(
                workflow_id=wf.id,
                run_id=wf.run_id,
                workflow_type=wf.workflow_type,
                task_queue=wf.task_queue,
                namespace=client.namespace,
                arguments=to_jsonable_python(arguments),
                error_type=status,
                error_message=f"workflow run closed as {status}",
            )
        )
        count += 1
    return count


async def redrive(router: ClusterRouter, store: FailureStore, failure_id: int) -> str:
    """Start the failed workflow again under the same ID with the same arguments."""
    failure = store.get(failure_id)
    if failure.redriven_at is not None:
        raise ValueError(
            f"failure {failure_id} was already redriven as run {failure.redrive_run_id}"
        )
    handle = await router.redrive(
        failure.workflow_type, failure.arguments, failure.workflow_id, failure.task_queue
    )
    run_id = handle.result_run_id or ""
    store.mark_redriven(failure_id, run_id)
    return run_id
