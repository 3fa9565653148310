"""Duplicate submissions, a worker killed mid-run, and 500 events converging on 20 jobs."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter
from pathlib import Path

from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from app.core.blobstore import LocalBlobStore
from app.domains.parcel import DOMAIN
from app.domains.parcel.models import IngestProgress, PipelineSettings
from app.domains.parcel.starter import follow, submit
from app.domains.rate_audit.models import JobEventsInput
from app.domains.rate_audit.workflows import UpdateRateAuditStatusWorkflow
from app.formats.generator import Edi210Spec, write_edi210
from app.platform.client import HaulClient
from app.platform.history import scheduled_activity_inputs
from app.platform.retry_on_signal import EntityEvent, EntityInput
from app.stack.registry import ClusterRecord
from app.stack.workers import start_worker, stop_worker
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file
from tests.integration.parcel.history_checks import settled_runs


def duplicate_counts(env: ParcelEnv, content_hash: str) -> dict[str, object]:
    """Rows of the file, and how many of them share a natural key (must be none)."""
    return {
        "revisions": env.one(
            "select count(*) from parcel_invoice_revisions where file_hash = %s", content_hash),
        "invoices": env.one(
            """select count(distinct invoice_id) from parcel_invoice_revisions
               where file_hash = %s""", content_hash),
        "groups": env.one(
            """select count(*) from parcel_charge_groups g join parcel_invoice_revisions r
               on r.id = g.revision_id where r.file_hash = %s""", content_hash),
        "charges": env.one(
            """select count(*) from parcel_charges c join parcel_charge_groups g
               on g.id = c.group_id join parcel_invoice_revisions r on r.id = g.revision_id
               where r.file_hash = %s""", content_hash),
        "findings": env.one(
            """select count(*) from audit_findings f join parcel_invoice_revisions r
               on r.id = f.revision_id where r.file_hash = %s""", content_hash),
        "queued": env.one(
            """select count(*) from review_queue q join parcel_invoice_revisions r
               on r.id = q.revision_id where r.file_hash = %s""", content_hash),
    }


async def gone(client: Client, workflow_id: str) -> bool:
    """Whether the server no longer has any run of the ID (deletion is asynchronous)."""
    for _ in range(600):
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return True
            raise
        await asyncio.sleep(0.2)
    return False


async def test_the_same_file_twice_is_one_run_even_after_temporal_forgets_it(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    path = tmp_path / "twice.edi"
    write_edi210(path, Edi210Spec(invoices=6, groups_per_invoice=2, seed=1045))
    copy = tmp_path / "same-content-other-name.edi"
    copy.write_bytes(path.read_bytes())
    async with parcel_worker(client, task_queue, parcel_env):
        # two submissions at once join one workflow (USE_EXISTING) ...
        (first, _), (second, _) = await asyncio.gather(
            run_file(haul_client, parcel_env, path, task_queue),
            run_file(haul_client, parcel_env, copy, task_queue),
        )
        rows = duplicate_counts(parcel_env, first.content_hash)
        # ... exactly one run exists for the two submissions (the second joined the first) ...
        assert len(await settled_runs(client, first.workflow_id)) == 1
        # ... and after the run is gone from Temporal (as after retention), the idempotency
        # row still turns a third submission into the first one's summary
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution={"workflow_id": first.workflow_id},
            )
        )
        assert await gone(client, first.workflow_id)
        third, ran3 = await run_file(haul_client, parcel_env, path, task_queue)
    assert first.workflow_id == second.workflow_id == third.workflow_id
    assert not ran3
    assert third.invoices == first.invoices == 6 and third.charges == first.charges
    assert await gone(client, first.workflow_id)  # nothing was started again
    assert duplicate_counts(parcel_env, first.content_hash) == rows
    assert rows["revisions"] == rows["invoices"] == 6


async def test_worker_killed_mid_run_then_restarted_completes_without_duplicates(
    dev_cluster: ClusterRecord, client: Client, haul_client: HaulClient, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    """Worker processes serve the real `parcel` queue with the cluster's blob dir."""
    path = tmp_path / "killed.edi"
    spec = Edi210Spec(invoices=160, groups_per_invoice=20, charges_per_group=3, seed=1046)
    report = write_edi210(path, spec)
    blobs = LocalBlobStore(dev_cluster.blob_dir)
    # 16 packed runs of 10 invoices, 7 children per splitter run: killed mid-file, mid-runs
    settings = PipelineSettings(max_concurrency=20, audit_batch_size=8, children_per_run=7,
                                invoices_per_run=10)
    seen: list[IngestProgress] = []
    start_worker(dev_cluster, role="parcel-first")
    try:
        sub = await submit(haul_client, parcel_env.database, blobs, path, settings=settings,
                           task_queue=DOMAIN.task_queue)
        assert sub.handle is not None
        watcher = client.get_workflow_handle(sub.workflow_id)
        for _ in range(600):
            progress = await watcher.query("progress", result_type=IngestProgress)
            if progress.done >= 30:
                break
            await asyncio.sleep(0.1)
        seen.append(progress)
        stop_worker(dev_cluster, "parcel-first", sig=signal.SIGKILL)
    finally:
        stop_worker(dev_cluster, "parcel-first")
    start_worker(dev_cluster, role="parcel-second")
    try:
        summary = await asyncio.wait_for(follow(haul_client, sub.handle), 600)
    finally:
        stop_worker(dev_cluster, "parcel-second")
    assert 30 <= seen[0].done < spec.invoices  # it really was killed mid-run
    assert summary.outcome == "completed" and summary.failures == 0
    rows = duplicate_counts(parcel_env, summary.content_hash)
    assert rows["revisions"] == rows["invoices"] == spec.invoices
    assert rows["groups"] == rows["findings"] == report.groups
    assert rows["charges"] == report.charges
    assert rows["queued"] == summary.discrepancies
    assert len(await settled_runs(client, summary.workflow_id)) >= 2


async def test_500_revision_events_on_20_jobs_are_each_applied_once(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
) -> None:
    prefix = uuid.uuid4().hex[:8]
    jobs = [f"TEST:{prefix}-{j}" for j in range(20)]
    kinds = ("invoice_revision", "task_completed", "payment")
    sent = [(jobs[n % 20], f"{prefix}-ev-{n}", kinds[n % 3]) for n in range(500)]

    async def send(job: str, event_id: str, kind: str, sem: asyncio.Semaphore) -> None:
        payload: dict[str, object] = {"amount": "1.25"} if kind == "payment" else {}
        if kind == "invoice_revision":
            payload = {"revision_id": -1}  # a revision this job has not seen normalized
        async with sem:
            await haul_client.signal_with_start(
                UpdateRateAuditStatusWorkflow.run,
                EntityInput(entity_key=job, history_limit=80),
                job,
                UpdateRateAuditStatusWorkflow.on_event,
                EntityEvent(event_id=event_id, kind=kind, payload=payload),
                task_queue=task_queue,
            )

    async with parcel_worker(client, task_queue, parcel_env):
        sem = asyncio.Semaphore(40)
        await asyncio.gather(*(send(*e, sem) for e in sent))
        ids = [haul_client.id_for(UpdateRateAuditStatusWorkflow.run, j) for j in jobs]
        for wf_id in ids:
            await client.get_workflow_handle(wf_id).result()
        applied: Counter[str] = Counter()
        statuses: Counter[str] = Counter()
        for wf_id in ids:
            for run in await settled_runs(client, wf_id):
                described = await client.get_workflow_handle(wf_id, run_id=run).describe()
                statuses[described.status.name if described.status else "UNKNOWN"] += 1
                for batch in await scheduled_activity_inputs(
                    client, wf_id, run, "apply_shipment_job_events", JobEventsInput
                ):
                    applied.update(e.event_id for e in batch.events)
    assert set(applied) == {e for _, e, _ in sent}
    assert max(applied.values()) == 1
    # Every run ended by continuing or by completing: none failed or was cut short. (Whether a
    # job continues as new depends on how its events batch; test_fan_in forces that case with
    # a slow activity and proves the carried events are processed once.)
    assert set(statuses) <= {"CONTINUED_AS_NEW", "COMPLETED"}, statuses
    assert sum(statuses.values()) >= len(jobs)
    per_job = dict(parcel_env.rows(
        "select job_key, events_applied from shipment_jobs where job_key like %s",
        f"TEST:{prefix}-%"))
    assert per_job == {j: 25 for j in jobs}
    assert parcel_env.one(
        "select count(*) from shipment_job_events where event_id like %s", f"{prefix}-ev-%"
    ) == 500


