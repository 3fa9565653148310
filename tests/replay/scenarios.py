"""One short run per shipped workflow type, whose history the replay test keeps.

A new workflow type needs an entry here (the replay test refuses a type without a history);
then run `python -m tests.replay.capture` and commit the new file in tests/replay/histories.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle

from app.domains.loadgen.models import NoopInput, TimerInput
from app.domains.loadgen.workflows import NoopActivityWorkflow, TimerWorkflow
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.retry_on_signal import EVENT_SIGNAL, EntityEvent, EntityInput

Scenario = Callable[[HaulClient, str], Awaitable[WorkflowHandle[Any, Any]]]


async def _greeting(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return await client.start(GreetingWorkflow.run, GreetingInput(name="replay"), ident)


async def _ledger(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    handle = None
    for i in range(3):
        handle = await client.signal_with_start(
            LedgerEntityWorkflow.run,
            EntityInput(entity_key=ident),
            ident,
            LedgerEntityWorkflow.on_event,
            EntityEvent(event_id=f"{ident}-{i}", kind="echo-request" if i == 0 else "event"),
        )
    assert handle is not None
    return handle


async def _history_until(
    handle: WorkflowHandle[Any, Any], event_type: str, deadline: float = 60.0
) -> Any:
    """The run's history once it holds an event of `event_type`; fails after the deadline."""
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        history = await handle.fetch_history()
        if any(EventType.Name(e.event_type) == event_type for e in history.events):
            return history
        if loop.time() > end:
            raise TimeoutError(f"{handle.id} run {handle.run_id}: no {event_type} in {deadline}s")
        await asyncio.sleep(0.1)


async def _continued_entity(
    client: HaulClient, ident: str, workflow_cls: Any, task_queue: str | None, after: int
) -> WorkflowHandle[Any, Any]:
    """An entity that continues as new carrying two events: they arrive while the first
    batch's activity runs (work_seconds), and history_limit=1 makes that run continue. Then
    `after` more events go to the continued run once its first workflow task completed."""
    first = await client.signal_with_start(
        workflow_cls.run,
        EntityInput(entity_key=ident, history_limit=1, state={"work_seconds": 2.0}),
        ident,
        workflow_cls.on_event,
        EntityEvent(event_id=f"{ident}-0"),
        task_queue=task_queue,
    )
    run1 = client.client.get_workflow_handle(first.id, run_id=first.result_run_id)
    await _history_until(run1, "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    for i in (1, 2):
        await run1.signal(EVENT_SIGNAL, EntityEvent(event_id=f"{ident}-{i}"))
    await _history_until(run1, "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW")
    latest = client.client.get_workflow_handle(first.id)
    run2 = (await latest.describe()).run_id
    await _history_until(
        client.client.get_workflow_handle(first.id, run_id=run2),
        "EVENT_TYPE_WORKFLOW_TASK_COMPLETED",
    )
    for i in range(3, 3 + after):
        await latest.signal(EVENT_SIGNAL, EntityEvent(event_id=f"{ident}-{i}"))
    return latest


async def _ledger_carried(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    """Today's code: the continued run takes the patched branch and processes what it carries."""
    return await _continued_entity(client, ident, LedgerEntityWorkflow, None, after=0)


async def _ledger_prepatch(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    """The code before the patch: the continued run drops what it carries and waits, so one
    more event ends it."""
    from tests.replay import prepatch

    return await _continued_entity(
        client, ident, prepatch.LedgerBeforeCarryPatch, prepatch.TASK_QUEUE, after=1
    )


async def _noop(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return await client.start(NoopActivityWorkflow.run, NoopInput(tag="replay"), ident)


async def _timer(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return await client.start(TimerWorkflow.run, TimerInput(seconds=0.2), ident)


def _parcel_env() -> tuple[Any, Any]:
    """The capture cluster's database (migrated, sample contracts loaded) and blob store, also
    exported as HAUL_* so the capture worker's parcel activities find them."""
    import os

    import psycopg

    from app.core.blobstore import LocalBlobStore
    from app.core.database import Database
    from app.core.migrate import migrate
    from app.domains.rate_audit.activities import seed_contracts
    from app.domains.rate_audit.rates import sample_contracts
    from app.stack.registry import Registry

    rec = Registry().get("replay-capture")
    assert rec is not None, "parcel scenarios run under `python -m tests.replay.capture`"
    migrate(rec.dsn())
    with psycopg.connect(rec.dsn(), autocommit=True) as conn:
        seed_contracts(conn, sample_contracts())
    os.environ["HAUL_DATABASE_URL"] = rec.dsn()
    os.environ["HAUL_BLOB_DIR"] = str(rec.blob_dir)
    return Database(rec.dsn()), LocalBlobStore(rec.blob_dir)


async def _parcel_ingest(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    import tempfile
    from pathlib import Path

    from app.domains.parcel.models import PipelineSettings
    from app.domains.parcel.starter import submit
    from app.formats.generator import Edi210Spec, write_edi210

    database, blobs = _parcel_env()
    path = Path(tempfile.mkdtemp()) / f"{ident}.edi"
    # one bad invoice, and a continue-as-new after two children
    write_edi210(
        path,
        Edi210Spec(
            invoices=3, groups_per_invoice=2, seed=abs(hash(ident)) % 997, bad_amount=frozenset({1})
        ),
    )
    settings = PipelineSettings(max_concurrency=2, audit_batch_size=1, children_per_run=2)
    sub = await submit(client, database, blobs, path, settings=settings)
    assert sub.handle is not None
    return sub.handle


async def _parcel_packed(
    client: HaulClient, ident: str, **settings: int
) -> WorkflowHandle[Any, Any]:
    """Today's shape: five invoices, the second one bad, in packed runs of two (the bad one
    goes on alone in its own child), and a continue-as-new after two children."""
    import tempfile
    from pathlib import Path

    from app.domains.parcel.models import PipelineSettings
    from app.domains.parcel.starter import submit
    from app.formats.generator import Edi210Spec, write_edi210

    database, blobs = _parcel_env()
    path = Path(tempfile.mkdtemp()) / f"{ident}.edi"
    write_edi210(path, Edi210Spec(invoices=5, groups_per_invoice=2,
                                  seed=abs(hash(ident)) % 997, bad_amount=frozenset({1})))
    pipeline = PipelineSettings(max_concurrency=2, audit_batch_size=3, children_per_run=2,
                                invoices_per_run=2, **settings)
    sub = await submit(client, database, blobs, path, settings=pipeline)
    assert sub.handle is not None
    return sub.handle


async def _parcel_large(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    """Invoices at the run charge budget: each keeps a child of its own."""
    return await _parcel_packed(client, ident, run_charge_budget=1)


async def _parcel_run(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    from app.domains.parcel.models import run_identifier
    from app.platform.ids import workflow_id

    parent = await _parcel_packed(client, ident)
    await parent.result()
    digest = parent.id.split("|", 1)[1]
    return client.client.get_workflow_handle(
        workflow_id("ParcelInvoiceRun", run_identifier(digest, 0, 2))
    )


async def _parcel_invoice(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    from app.domains.parcel.models import child_identifier
    from app.platform.ids import workflow_id

    parent = await _parcel_ingest(client, ident)
    await parent.result()
    digest = parent.id.split("|", 1)[1]
    return client.client.get_workflow_handle(
        workflow_id("ParcelInvoice", child_identifier(digest, 0))
    )


async def _rate_audit_status(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    from app.domains.rate_audit.workflows import UpdateRateAuditStatusWorkflow

    _parcel_env()
    handle = None
    for i, kind in enumerate(("invoice_revision", "task_completed", "payment")):
        payload: dict[str, Any] = {"amount": "10.00"} if kind == "payment" else {}
        handle = await client.signal_with_start(
            UpdateRateAuditStatusWorkflow.run,
            EntityInput(entity_key=ident),
            ident,
            UpdateRateAuditStatusWorkflow.on_event,
            EntityEvent(event_id=f"{ident}-{i}", kind=kind, payload=payload),
        )
    assert handle is not None
    return handle


# The capture cluster's second name: a handoff "to" it starts the continuation on the same
# server, once the handed-off run is closed (see tests/replay/capture.py).
HANDOFF_ALIAS = "replay-capture-handoff"
_handed_off: dict[str, WorkflowHandle[Any, Any]] = {}


async def _handoff(client: HaulClient) -> dict[str, WorkflowHandle[Any, Any]]:
    """One entity handed off with an event pending, once per capture: the handed-off run, its
    continuation and the resumer that started it."""
    if _handed_off:
        return _handed_off
    from app.platform.handoff_control import request_handoff
    from app.platform.handoff_models import RESUME_WORKFLOW, HandoffRequest
    from app.platform.ids import workflow_id

    ident = "replay-handoff"
    first = await client.signal_with_start(
        LedgerEntityWorkflow.run,
        EntityInput(entity_key=ident, state={"work_seconds": 2.0}),
        ident,
        LedgerEntityWorkflow.on_event,
        EntityEvent(event_id=f"{ident}-0"),
    )
    run1 = client.client.get_workflow_handle(first.id, run_id=first.result_run_id)
    await _history_until(run1, "EVENT_TYPE_ACTIVITY_TASK_SCHEDULED")
    await run1.signal(EVENT_SIGNAL, EntityEvent(event_id=f"{ident}-1"))
    ack = await request_handoff(
        client.client,
        first.id,
        HandoffRequest(from_cluster="replay-capture", to_cluster=HANDOFF_ALIAS),
    )
    old = client.client.get_workflow_handle_for(
        LedgerEntityWorkflow.run, first.id, run_id=ack.run_id
    )
    assert (await old.result()).reason == "handed off", "the capture worker refused the handoff"
    resumer = client.client.get_workflow_handle(workflow_id(RESUME_WORKFLOW, first.id))
    await _history_until(resumer, "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED")
    _handed_off["old"] = old
    _handed_off["resumed"] = client.client.get_workflow_handle(first.id)
    _handed_off["resumer"] = resumer
    return _handed_off


async def _ledger_handed_off(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return (await _handoff(client))["old"]


async def _ledger_resumed(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return (await _handoff(client))["resumed"]


async def _handoff_resume(client: HaulClient, ident: str) -> WorkflowHandle[Any, Any]:
    return (await _handoff(client))["resumer"]


SCENARIOS: dict[str, Scenario] = {
    "ParcelIngest": _parcel_ingest,
    "ParcelInvoice": _parcel_invoice,
    "ParcelIngest-packed": _parcel_packed,
    "ParcelIngest-large": _parcel_large,
    "ParcelInvoiceRun": _parcel_run,
    "UpdateRateAuditStatus": _rate_audit_status,
    "GreetingWorkflow": _greeting,
    "LedgerEntityWorkflow": _ledger,
    "LedgerEntityWorkflow-carried": _ledger_carried,
    "LedgerEntityWorkflow-prepatch": _ledger_prepatch,
    "LedgerEntityWorkflow-handedoff": _ledger_handed_off,
    "LedgerEntityWorkflow-resumed": _ledger_resumed,
    "HandoffResume": _handoff_resume,
    "NoopActivityWorkflow": _noop,
    "TimerWorkflow": _timer,
}
