"""Packed runs keep the promises of one child per invoice: a bad invoice in the middle of a run
fails alone and lands in the failure inbox under its own ID, its siblings finish in the run with
one activity per step, every invoice's outcome is queryable, and a failed invoice is redriven
alone once the cause is fixed."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from app.domains.parcel.models import (
    IngestSummary,
    InvoiceState,
    PipelineSettings,
    child_identifier,
    run_identifier,
)
from app.domains.parcel.workflows import INVOICE_WORKFLOW, RUN_WORKFLOW
from app.formats.generator import Edi210Spec, write_edi210
from app.platform.client import HaulClient
from app.platform.failures import FailureStore
from app.platform.history import events
from app.platform.ids import workflow_id
from app.platform.redrive import redrive
from tests.integration.failure_checks import recorded_failures
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file
from tests.integration.parcel.history_checks import settled_runs


async def scheduled_activities(client: Client, wf_id: str) -> Counter[str]:
    """Activities a workflow's (single) run scheduled, by activity type."""
    counts: Counter[str] = Counter()
    async for ev in events(client, wf_id, ""):
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            counts[ev.activity_task_scheduled_event_attributes.activity_type.name] += 1
    return counts


async def children_started(client: Client, wf_id: str) -> list[str]:
    started = []
    for run in await settled_runs(client, wf_id):
        async for ev in events(client, wf_id, run):
            if ev.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED:
                attrs = ev.child_workflow_execution_started_event_attributes
                started.append(attrs.workflow_execution.workflow_id)
    return started


async def exists(client: Client, wf_id: str) -> bool:
    try:
        await client.get_workflow_handle(wf_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def job_events(env: ParcelEnv, revisions: list[int], deadline: float = 60.0) -> int:
    """invoice_revision events recorded for these revisions, once all are (or the deadline)."""
    wanted = [f"revision:{r}" for r in revisions]
    found = 0
    for _ in range(int(deadline * 5)):
        found = int(env.one(  # type: ignore[call-overload]
            "select count(*) from shipment_job_events where event_id = any(%s)", wanted))
        if found == len(wanted):
            break
        await asyncio.sleep(0.2)
    return found


def revisions_of(env: ParcelEnv, summary: IngestSummary) -> dict[int, int]:
    return {
        int(i): int(r)  # type: ignore[call-overload]
        for i, r in env.rows(
            "select file_index, id from parcel_invoice_revisions where file_hash = %s",
            summary.content_hash)
    }


async def test_a_bad_invoice_in_the_middle_of_a_packed_run_fails_alone(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    spec = Edi210Spec(invoices=9, groups_per_invoice=2, charges_per_group=2,
                      seed=uuid.uuid4().int % 10**8, account=f"PACKED{uuid.uuid4().hex[:8]}",
                      bad_amount=frozenset({4}))
    report = write_edi210(tmp_path / "packed.edi", spec)
    settings = PipelineSettings(max_concurrency=4, audit_batch_size=3)
    async with parcel_worker(client, task_queue, parcel_env):
        summary, ran = await run_file(haul_client, parcel_env, tmp_path / "packed.edi",
                                      task_queue, settings=settings)
        h = summary.content_hash
        run_id = workflow_id(RUN_WORKFLOW, run_identifier(h, 0, 9))
        outcomes = await client.get_workflow_handle(run_id).query(
            "outcomes", result_type=list[InvoiceState])

    assert ran and summary.outcome == "completed"
    assert summary.invoices == 9 and summary.invoices_ok == 8 and summary.failures == 1
    [failure] = summary.failure_reasons
    assert (failure.index, failure.error_type) == (4, "ParcelInvalidAmount")
    # one packed run for the nine, and a child of its own only for the bad one
    alone = workflow_id(INVOICE_WORKFLOW, child_identifier(h, 4))
    assert await children_started(client, summary.workflow_id) == [run_id]
    assert await children_started(client, run_id) == [alone]
    for index in (0, 3, 5, 8):
        assert not await exists(client, workflow_id(INVOICE_WORKFLOW, child_identifier(h, index)))
    # one activity per step for the run: 8 invoices x 2 groups in batches of 3 groups
    assert await scheduled_activities(client, run_id) == {
        "normalize_run": 1, "audit_slices": 6, "queue_run": 1}
    # every invoice's outcome, from the run's query
    by_index = {o.index: o for o in outcomes}
    assert sorted(by_index) == list(range(9))
    assert by_index[4].status == "failed" and by_index[4].error_type == "ParcelInvalidAmount"
    revisions = revisions_of(parcel_env, summary)
    assert sorted(revisions) == [0, 1, 2, 3, 5, 6, 7, 8]
    for index, revision in revisions.items():
        assert (by_index[index].status, by_index[index].revision_id) == ("done", revision)
    # the siblings are audited and their shipment jobs told; the bad one is in both stores
    assert parcel_env.one(
        """select count(*) from audit_findings f join parcel_invoice_revisions r
           on r.id = f.revision_id where r.file_hash = %s""", h) == report.groups == 16
    assert await job_events(parcel_env, list(revisions.values())) == 8
    assert parcel_env.rows(
        "select file_index, error_type from parcel_invoice_failures where file_hash = %s",
        h) == [(4, "ParcelInvalidAmount")]
    [record] = await recorded_failures(client, parcel_env.dsn, alone)
    assert record.error_type == "ParcelInvalidAmount" and record.arguments[0]["index"] == 4


async def test_an_invoice_the_database_refuses_is_redriven_alone_after_the_fix(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    tag = uuid.uuid4().hex[:8]
    spec = Edi210Spec(invoices=5, groups_per_invoice=2, charges_per_group=2,
                      seed=uuid.uuid4().int % 10**8, account=f"REDRIVE{tag}")
    report = write_edi210(tmp_path / "refused.edi", spec)
    refused = report.invoices[2].invoice_number
    trigger = f"refuse_{tag}"
    # A rule of the database's that refuses one invoice, as a constraint would: the same on
    # every retry, until someone changes the database.
    with parcel_env.database.connect() as conn:
        conn.execute(f"""
            create function {trigger}() returns trigger language plpgsql as $$
            begin
                if new.account = '{spec.account}' and new.invoice_number = '{refused}' then
                    raise exception 'invoice % is on hold', new.invoice_number
                        using errcode = 'check_violation';
                end if;
                return new;
            end $$;
            create trigger {trigger} before insert on parcel_invoices
                for each row execute function {trigger}();""")
    try:
        async with parcel_worker(client, task_queue, parcel_env):
            summary, _ = await run_file(haul_client, parcel_env, tmp_path / "refused.edi",
                                        task_queue)
            h = summary.content_hash
            alone = workflow_id(INVOICE_WORKFLOW, child_identifier(h, 2))
            [record] = await recorded_failures(client, parcel_env.dsn, alone)
            assert summary.failures == 1 and summary.invoices_ok == 4
            assert record.error_type == "ParcelDatabaseRefused"
            assert "on hold" in record.error_message and refused in record.error_message
            with parcel_env.database.connect() as conn:
                conn.execute(f"drop trigger {trigger} on parcel_invoices")
            store = FailureStore(parcel_env.dsn)
            new_run = await redrive(haul_client.router, store, record.id)
            result = await client.get_workflow_handle(alone, run_id=new_run).result()
    finally:
        with parcel_env.database.connect() as conn:
            conn.execute(f"drop trigger if exists {trigger} on parcel_invoices")
            conn.execute(f"drop function if exists {trigger}()")

    assert result["index"] == 2 and result["groups"] == 2
    assert sorted(revisions_of(parcel_env, summary)) == [0, 1, 2, 3, 4]
    # only that invoice ran again: the ingestion and the run each have their one run, and no
    # sibling ever had a child of its own
    assert len(await settled_runs(client, summary.workflow_id)) == 1
    assert len(await settled_runs(client, workflow_id(RUN_WORKFLOW, run_identifier(h, 0, 5)))) \
        == 1
    assert len(await settled_runs(client, alone)) == 2
    for index in (0, 1, 3, 4):
        assert not await exists(client, workflow_id(INVOICE_WORKFLOW, child_identifier(h, index)))


async def started_attempts(client: Client, wf_id: str, activity_type: str) -> list[int]:
    """The attempt number each scheduled activity of a type ended on."""
    scheduled: dict[int, str] = {}
    attempts = []
    async for ev in events(client, wf_id, ""):
        if ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[ev.event_id] = ev.activity_task_scheduled_event_attributes.activity_type.name
        elif ev.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = ev.activity_task_started_event_attributes
            if scheduled.get(attrs.scheduled_event_id) == activity_type:
                attempts.append(attrs.attempt)
    return attempts


@pytest.mark.parametrize(("errcode", "alone"), [
    ("P0001", True),  # an error of the invoice's own: it is retried alone, in its own child
    ("40001", False),  # the database's (a serialization failure): the whole step is retried
])
async def test_an_invoice_failing_once_in_a_run_is_retried_and_nothing_is_lost(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path, errcode: str, alone: bool,
) -> None:
    tag = uuid.uuid4().hex[:8]
    spec = Edi210Spec(invoices=5, groups_per_invoice=2, charges_per_group=2,
                      seed=uuid.uuid4().int % 10**8, account=f"ONCE{tag}")
    report = write_edi210(tmp_path / "once.edi", spec)
    flaky = report.invoices[3].invoice_number
    trigger = f"once_{tag}"
    # The first insert of that invoice fails; a sequence (not rolled back with the insert)
    # remembers that it did.
    with parcel_env.database.connect() as conn:
        conn.execute(f"""
            create sequence {trigger};
            create function {trigger}() returns trigger language plpgsql as $$
            begin
                if new.account = '{spec.account}' and new.invoice_number = '{flaky}'
                   and nextval('{trigger}') = 1 then
                    raise exception 'a passing fault' using errcode = '{errcode}';
                end if;
                return new;
            end $$;
            create trigger {trigger} before insert on parcel_invoices
                for each row execute function {trigger}();""")
    try:
        async with parcel_worker(client, task_queue, parcel_env):
            summary, _ = await run_file(haul_client, parcel_env, tmp_path / "once.edi",
                                        task_queue)
    finally:
        with parcel_env.database.connect() as conn:
            conn.execute(f"drop trigger if exists {trigger} on parcel_invoices")
            conn.execute(f"drop function if exists {trigger}()")
            conn.execute(f"drop sequence if exists {trigger}")

    h = summary.content_hash
    run_id = workflow_id(RUN_WORKFLOW, run_identifier(h, 0, 5))
    own = workflow_id(INVOICE_WORKFLOW, child_identifier(h, 3))
    assert summary.failures == 0 and summary.invoices_ok == 5
    assert sorted(revisions_of(parcel_env, summary)) == [0, 1, 2, 3, 4]
    assert parcel_env.one(
        """select count(*) from audit_findings f join parcel_invoice_revisions r
           on r.id = f.revision_id where r.file_hash = %s""", h) == report.groups
    if alone:
        assert await children_started(client, run_id) == [own]
        assert await started_attempts(client, run_id, "normalize_run") == [1]
    else:
        assert await children_started(client, run_id) == []
        assert await started_attempts(client, run_id, "normalize_run") == [2]
