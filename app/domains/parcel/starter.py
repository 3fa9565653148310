"""Submit one carrier file to the parcel pipeline and follow it to its summary.

Used by `haul ingest parcel`, the main job (`haul run`), tests and the benchmark. The workflow
ID is the file's content hash, and the Postgres idempotency row (which outlives Temporal's
retention) turns a second submission of the same file into a report of the first.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import WorkflowHandle

from app.core.blobstore import BlobStore
from app.core.database import Database
from app.domains.parcel import tables
from app.domains.parcel.models import (
    IngestInput,
    IngestProgress,
    IngestSummary,
    PipelineSettings,
    file_blob_key,
)
from app.domains.parcel.workflows import ParcelIngestWorkflow
from app.platform.client import HaulClient

ProgressCallback = Callable[[IngestProgress], Awaitable[None] | None]


def content_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Submission:
    content_hash: str
    workflow_id: str
    # The summary of an earlier ingestion of the same file, when there was one.
    previous: IngestSummary | None
    handle: WorkflowHandle[ParcelIngestWorkflow, IngestSummary] | None


async def submit(
    client: HaulClient,
    database: Database,
    blobs: BlobStore,
    path: Path,
    *,
    carrier: str | None = None,
    strict_envelope: bool = True,
    settings: PipelineSettings | None = None,
    task_queue: str | None = None,
) -> Submission:
    """Store the file and start its ingestion, unless this content was ingested before."""
    digest = await asyncio.to_thread(content_hash, path)
    wf_id = client.id_for(ParcelIngestWorkflow.run, digest)

    def claim() -> tuple[str, object]:
        with database.connect() as conn:
            outcome, detail = tables.claim_ingestion(conn, wf_id, digest)
            if outcome not in ("completed", "running"):
                tables.reopen_ingestion(conn, wf_id)  # a rejected file may be sent again, fixed
            return outcome, detail

    # Off the event loop: a load test drives many submissions through one loop.
    outcome, detail = await asyncio.to_thread(claim)
    if outcome == "completed":
        return Submission(digest, wf_id, IngestSummary.model_validate(detail), None)
    key = file_blob_key(digest)
    if not await asyncio.to_thread(blobs.exists, key):
        await asyncio.to_thread(blobs.put_file, key, path)
    handle = await client.start(
        ParcelIngestWorkflow.run,
        IngestInput(
            content_hash=digest,
            file_name=path.name,
            carrier=carrier,
            strict_envelope=strict_envelope,
            settings=settings or PipelineSettings.from_env(),
            packed=True,
        ),
        digest,
        task_queue=task_queue,
    )
    return Submission(digest, wf_id, None, handle)


async def follow(
    client: HaulClient,
    handle: WorkflowHandle[ParcelIngestWorkflow, IngestSummary],
    on_progress: ProgressCallback | None = None,
    interval: float = 0.5,
) -> IngestSummary:
    """Wait for the result, reporting the splitter's `progress` query along the way."""
    result = asyncio.ensure_future(handle.result(follow_runs=True))
    latest = client.client.get_workflow_handle(handle.id)  # the current run, across CAN
    while not result.done():
        if on_progress is not None:
            try:
                progress = await latest.query(ParcelIngestWorkflow.progress)
            except Exception:  # between runs (continue-as-new) a query can miss; try again
                progress = None
            if progress is not None:
                maybe = on_progress(progress)
                if maybe is not None:
                    await maybe
        await asyncio.wait([result], timeout=interval)
    return result.result()


async def ingest(
    client: HaulClient,
    database: Database,
    blobs: BlobStore,
    path: Path,
    *,
    on_progress: ProgressCallback | None = None,
    **options: object,
) -> tuple[IngestSummary, bool]:
    """(summary, whether this call ran the pipeline) for one file."""
    sub = await submit(client, database, blobs, path, **options)  # type: ignore[arg-type]
    if sub.handle is None:
        assert sub.previous is not None
        return sub.previous, False
    return await follow(client, sub.handle, on_progress), True
