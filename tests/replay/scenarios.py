"""One short run per shipped workflow type, whose history the replay test keeps.

A new workflow type needs an entry here (the replay test refuses a type without a history);
then run `python -m tests.replay.capture` and commit the new file in tests/replay/histories.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.client import WorkflowHandle

from app.domains.loadgen.models import NoopInput, TimerInput
from app.domains.loadgen.workflows import NoopActivityWorkflow, TimerWorkflow
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.retry_on_signal import EntityEvent, EntityInput

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


SCENARIOS: dict[str, Scenario] = {
    "ParcelIngest": _parcel_ingest,
    "ParcelInvoice": _parcel_invoice,
    "UpdateRateAuditStatus": _rate_audit_status,
    "GreetingWorkflow": _greeting,
    "LedgerEntityWorkflow": _ledger,
    "NoopActivityWorkflow": _noop,
    "TimerWorkflow": _timer,
}
