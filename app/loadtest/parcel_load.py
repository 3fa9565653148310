"""The `parcel_ingest` scenario's business operation: one small carrier file, ingested end to end.

Each operation writes a fresh EDI 210 file whose bill-to account is the operation's own task
identifier, so its content hash (the ingest workflow's ID) is new and its shipment jobs (the
`update_rate_audit_status` entities, keyed by SCAC, account and shipment) carry the run tag.
The file goes through the same `submit` as `haul ingest parcel`: claim-check blob, idempotency
row, splitter, packed runs of small invoices, rate audit, review queue.

The ingest workflow's ID is a content hash, so the harness cannot find it by run tag; each
operation appends it to a roots file, and accounting takes those runs and their descendants.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from app.core.blobstore import BlobStore, open_store
from app.core.database import Database
from app.domains.parcel.models import IngestSummary, PipelineSettings
from app.domains.parcel.starter import submit
from app.formats.generator import Edi210Spec, write_edi210
from app.loadtest.process_files import roots_file
from app.loadtest.settings import LoadSettings
from app.platform.client import HaulClient


@dataclass
class ParcelLoad:
    """Where a load process writes files and sends them, and how big each file is."""

    database: Database
    blobs: BlobStore
    work_dir: Path
    roots: Path | None = None
    invoices: int = 3
    groups_per_invoice: int = 2
    charges_per_group: int = 2
    settings: PipelineSettings = field(default_factory=PipelineSettings)

    @classmethod
    def from_settings(cls, settings: LoadSettings) -> ParcelLoad:
        """The run's database and blob store (HAUL_DATABASE_URL and HAUL_BLOB_DIR, as for
        `haul ingest parcel`) and file size; pipeline tuning from HAUL_PARCEL_*."""
        if not settings.blob_dir:
            raise ValueError(
                "parcel_ingest needs HAUL_BLOB_DIR (the workers' blob store) and "
                "HAUL_DATABASE_URL; a local --target sets both"
            )
        out = settings.out
        work = out / "files" if out else Path(settings.blob_dir) / "loadtest-files"
        work.mkdir(parents=True, exist_ok=True)
        return cls(
            database=Database(settings.database_url.get_secret_value()),
            blobs=open_store(settings.blob_dir),
            work_dir=work,
            roots=roots_file(out) if out else None,
            invoices=settings.parcel_invoices,
            groups_per_invoice=settings.parcel_groups,
            settings=PipelineSettings.from_env(),
        )

    def spec(self, ident: str) -> Edi210Spec:
        return Edi210Spec(
            invoices=self.invoices,
            groups_per_invoice=self.groups_per_invoice,
            charges_per_group=self.charges_per_group,
            account=ident,
        )

    async def ingest(self, haul: HaulClient, ident: str) -> IngestSummary:
        """Write, submit and await one file; a file with any failed invoice is a failure."""
        path = self.work_dir / f"{ident}.edi"
        await asyncio.to_thread(write_edi210, path, self.spec(ident))
        try:
            sub = await submit(haul, self.database, self.blobs, path, settings=self.settings)
        finally:
            path.unlink(missing_ok=True)
        if sub.handle is None:
            raise RuntimeError(f"{ident}: the file was ingested before; identifiers must be new")
        if self.roots is not None:
            with self.roots.open("a") as out:
                out.write(sub.workflow_id + "\n")
        summary: IngestSummary = await sub.handle.result(follow_runs=True)
        if summary.outcome != "completed" or summary.failures:
            raise RuntimeError(
                f"{ident}: {summary.outcome} with {summary.failures} failed invoices "
                f"{summary.error}".strip()
            )
        return summary
