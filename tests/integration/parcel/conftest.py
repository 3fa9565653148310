"""Parcel pipeline fixtures: a blob store, Postgres with the sample contracts, and in-process
workers for the parcel workflows and activities on the test's own task queue."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from app.core.blobstore import BlobStore, LocalBlobStore
from app.core.database import Database
from app.core.settings import Settings
from app.domains.parcel.activities import ParcelActivities
from app.domains.parcel.models import IngestSummary, PipelineSettings
from app.domains.parcel.starter import ingest
from app.domains.parcel.workflows import (
    ParcelIngestWorkflow,
    ParcelInvoiceRunWorkflow,
    ParcelInvoiceWorkflow,
)
from app.domains.rate_audit.activities import RateAuditActivities, seed_contracts
from app.domains.rate_audit.rates import sample_contracts
from app.domains.rate_audit.workflows import UpdateRateAuditStatusWorkflow
from app.platform.client import HaulClient
from app.platform.worker import WorkerContext
from app.stack.registry import ClusterRecord

WORKFLOWS = [ParcelIngestWorkflow, ParcelInvoiceWorkflow, ParcelInvoiceRunWorkflow,
             UpdateRateAuditStatusWorkflow]


@dataclass
class ParcelEnv:
    dsn: str
    blobs: LocalBlobStore
    settings: Settings
    database: Database

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return list(conn.execute(sql, args).fetchall())  # type: ignore[arg-type]

    def one(self, sql: str, *args: object) -> object:
        return self.rows(sql, *args)[0][0]


@pytest.fixture(scope="session")
def parcel_env(
    dev_cluster: ClusterRecord, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ParcelEnv]:
    dsn = dev_cluster.dsn()
    with psycopg.connect(dsn, autocommit=True) as conn:
        seed_contracts(conn, sample_contracts())
    blob_dir = tmp_path_factory.mktemp("blobs")
    env = ParcelEnv(
        dsn, LocalBlobStore(blob_dir), Settings(database_url=dsn, blob_dir=str(blob_dir)),
        Database(dsn),
    )
    yield env
    env.database.close()


def activities_for(settings: Settings, client: Client) -> list[object]:
    ctx = WorkerContext(settings, HaulClient(client))
    parcel, audit = ParcelActivities(ctx), RateAuditActivities(ctx)
    return [
        parcel.index_file,
        parcel.read_page,
        parcel.normalize_invoice,
        parcel.normalize_run,
        parcel.queue_discrepancies,
        parcel.queue_run,
        parcel.finish_ingest,
        audit.audit_charge_groups,
        audit.audit_slices,
        audit.apply_shipment_job_events,
    ]


@asynccontextmanager
async def parcel_worker(
    client: Client, task_queue: str, env: ParcelEnv, *, activities: int = 16
) -> AsyncIterator[Worker]:
    with ThreadPoolExecutor(max_workers=activities) as executor:
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=WORKFLOWS,
            activities=activities_for(env.settings, client),
            activity_executor=executor,
            max_concurrent_activities=activities,
            graceful_shutdown_timeout=timedelta(seconds=5),
        )
        async with worker:
            yield worker


async def run_file(
    haul: HaulClient,
    env: ParcelEnv,
    path: Path,
    task_queue: str,
    settings: PipelineSettings | None = None,
    submit_blobs: BlobStore | None = None,
    **options: object,
) -> tuple[IngestSummary, bool]:
    return await ingest(
        haul, env.database, submit_blobs or env.blobs, path, task_queue=task_queue,
        settings=settings or PipelineSettings(max_concurrency=20, audit_batch_size=2),
        **options,
    )
