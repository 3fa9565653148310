"""Inputs and results of the parcel workflows and activities (one input object per workflow).

Everything here is small by construction: the file and its charges stay in the blob store and
in Postgres, and these objects carry keys, counts and cursors (the claim-check pattern).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from app.core.settings import EnvSettings
from app.formats.invoice import MAX_LINE, InvoiceHeader, ParseLimits

# The server allows 2,000 pending children per run; stay well under it.
MAX_CONCURRENCY = 1_000
# Failures kept in the splitter's state (the full list is in Postgres).
FAILURE_SAMPLE = 20


class PipelineSettings(BaseModel):
    """Tuning of one ingestion; defaults come from HAUL_PARCEL_* variables at submit time."""

    # Children running at once (at most 1,000: the server refuses more than 2,000 pending).
    max_concurrency: int = Field(default=100, ge=1, le=MAX_CONCURRENCY)
    # Charge groups per rate-audit activity.
    audit_batch_size: int = Field(default=500, ge=1, le=100_000)
    # Invoices per page manifest the splitter reads.
    page_size: int = Field(default=100, ge=1, le=200)
    # Children a splitter run starts before it drains them and continues as new.
    children_per_run: int = Field(default=2_000, ge=1)
    # Attempts of one invoice's child workflow (bad input is never retried).
    child_max_attempts: int = Field(default=3, ge=1)
    # Send each audited invoice to its shipment job's update_rate_audit_status entity.
    update_job_status: bool = True
    # Charges one packed run of consecutive small invoices may hold; an invoice with at least
    # this many charges is large and keeps a child of its own.
    run_charge_budget: int = Field(default=10_000, ge=1)
    # Invoices one packed run may hold (a run never crosses a page manifest either).
    invoices_per_run: int = Field(default=100, ge=1, le=200)

    @classmethod
    def from_env(cls, **overrides: Any) -> PipelineSettings:
        """HAUL_PARCEL_* variables (an explicit override wins), read where an ingestion is
        submitted; the workflow only ever sees the plain model it was given."""
        return cls.model_validate(_PipelineEnv(**overrides).model_dump())


class _PipelineEnv(PipelineSettings, EnvSettings):
    """PipelineSettings read from HAUL_PARCEL_* (a separate class, so that building the plain
    model, as a workflow input's default does, never reads the environment)."""

    model_config = SettingsConfigDict(env_prefix="HAUL_PARCEL_")


class ParserSettings(EnvSettings):
    """Caps on what one file may make a worker hold, read from HAUL_PARCEL_* where the worker
    starts: they protect the worker's memory, so they belong to it, not to one ingestion."""

    model_config = SettingsConfigDict(env_prefix="HAUL_PARCEL_")

    # L1 charges of one LX loop (or CSV rows of one shipment): a guard with a clear error, not a
    # memory bound (charges stream through in chunks); at most 10,000,000 (one transaction)
    max_charges_per_group: int = Field(default=1_000_000, ge=1, le=10_000_000)
    # X12 segments of one transaction set, or CSV rows of one invoice (one normalize transaction)
    max_rows_per_invoice: int = Field(default=2_000_000, ge=1)
    # characters of one CSV line
    max_line: int = Field(default=MAX_LINE, ge=1_024, le=64 << 20)

    def limits(self) -> ParseLimits:
        return ParseLimits(max_charges_per_group=self.max_charges_per_group,
                           max_rows_per_invoice=self.max_rows_per_invoice,
                           max_line=self.max_line)


class IndexInput(BaseModel):
    content_hash: str
    workflow_id: str
    file_name: str = ""
    carrier: str | None = None
    strict_envelope: bool = True
    page_size: int = 100


class IndexResult(BaseModel):
    """What the single streaming pass over the file wrote to the blob store."""

    format: str
    invoice_count: int
    charge_count: int
    group_count: int
    parse_failures: int
    page_count: int
    page_size: int
    envelope_issues: list[str] = Field(default_factory=list)
    # a CSV file's rows: read == in invoices + refused (an X12 file counts none)
    rows_read: int = 0
    rows_in_invoices: int = 0
    rows_refused: int = 0


class PageEntry(BaseModel):
    """One invoice of a page manifest: enough to start and track its child, nothing more."""

    i: int  # 0-based index of the invoice in the file
    n: str = ""  # invoice number
    c: int = 0  # charges
    bad: bool = False  # the parser already failed it


class PageRequest(BaseModel):
    content_hash: str
    page: int


class ChildFailure(BaseModel):
    index: int
    invoice_number: str = ""
    error_type: str
    message: str


class IngestInput(BaseModel):
    """The splitter's input; cursor and counts carry its state across continue-as-new."""

    content_hash: str
    file_name: str = ""
    carrier: str | None = None
    strict_envelope: bool = True
    settings: PipelineSettings = Field(default_factory=PipelineSettings)
    # Pack small invoices into runs (ParcelInvoiceRun). The starter sets it; a history that
    # began before it existed lacks it and replays the one-child-per-invoice path.
    packed: bool = False
    # carried across continue-as-new
    index: IndexResult | None = None
    cursor: int = 0
    done: int = 0
    failed: int = 0
    run: int = 1
    failures: list[ChildFailure] = Field(default_factory=list)


class IngestProgress(BaseModel):
    invoices: int
    charges: int
    done: int
    failed: int
    running: int
    cursor: int
    run: int
    phase: str


class IngestSummary(BaseModel):
    """The end of one file's ingestion, as the summary table prints it (read from Postgres)."""

    content_hash: str
    workflow_id: str
    file_name: str = ""
    format: str = ""
    outcome: str = "completed"
    invoices: int = 0
    invoices_ok: int = 0
    charge_groups: int = 0
    charges: int = 0
    charges_total: str = "0.00"
    discrepancies: int = 0
    failures: int = 0
    failure_reasons: list[ChildFailure] = Field(default_factory=list)
    envelope_issues: list[str] = Field(default_factory=list)
    error: str = ""
    # a CSV file's rows, from its index: read == in invoices + refused
    rows_read: int = 0
    rows_in_invoices: int = 0
    rows_refused: int = 0


class FinishInput(BaseModel):
    content_hash: str
    workflow_id: str
    outcome: str = "completed"
    error: str = ""
    failed: int = 0
    failures: list[ChildFailure] = Field(default_factory=list)


class InvoiceInput(BaseModel):
    """One invoice of one file: the child reads it from the blob store by these keys."""

    content_hash: str
    index: int
    invoice_number: str = ""
    audit_batch_size: int = 500
    update_job_status: bool = True


class NormalizeResult(BaseModel):
    revision_id: int
    invoice_id: int
    group_count: int
    charge_count: int
    purpose: str
    job_key: str
    current: bool
    invoice_number: str = ""


class QueueInput(BaseModel):
    content_hash: str
    index: int
    revision_id: int
    job_key: str
    update_job_status: bool = True


class InvoiceOutcome(BaseModel):
    index: int
    revision_id: int
    groups: int
    charges: int
    audit_batches: int
    discrepancies: int


# Characters of an error message kept in a packed run's history and outcomes.
MESSAGE_CHARS = 300


class RunInput(BaseModel):
    """A packed run: `count` consecutive invoices of one file from index `first`, all small."""

    content_hash: str
    first: int
    count: int
    audit_batch_size: int = 500
    update_job_status: bool = True
    child_max_attempts: int = 3


class RunItem(BaseModel):
    """One invoice after a packed step; short field names, since a run's list is in history."""

    i: int  # index in the file
    n: str = ""  # invoice number
    r: int = 0  # revision ID, once normalized
    g: int = 0  # charge groups
    c: int = 0  # charges
    e: str = ""  # error type when the step failed for this invoice
    m: str = ""  # its message, cut to MESSAGE_CHARS
    bad: bool = False  # bad input: no retry inside the run can help


class QueueRunInput(BaseModel):
    """Queue the discrepancies of a run's audited revisions and tell their shipment jobs."""

    content_hash: str
    run_key: str  # the run's task identifier: makes the status events' IDs
    revision_ids: list[int]
    update_job_status: bool = True


class QueueRunResult(BaseModel):
    queued: int = 0
    jobs: int = 0  # shipment jobs signalled (one signal-with-start each)
    failed: dict[int, str] = Field(default_factory=dict)  # revision ID -> error


class InvoiceState(BaseModel):
    """What a packed run's `outcomes` query reports for one of its invoices."""

    index: int
    invoice_number: str = ""
    # pending, normalized, audited, done, alone (running in its own child), failed
    status: str = "pending"
    revision_id: int = 0
    error_type: str = ""
    message: str = ""


class RunOutcome(BaseModel):
    """A packed run's result: how many of its invoices succeeded, and every one that failed."""

    invoices: int
    ok: int
    alone: int  # invoices that ran in a child of their own after a packed step failed them
    groups: int = 0
    charges: int = 0
    audit_batches: int = 0
    discrepancies: int = 0
    jobs: int = 0
    failures: list[ChildFailure] = Field(default_factory=list)


class Slot(BaseModel):
    """The next child the splitter starts: a packed run, or one large invoice on its own."""

    first: int  # index in the file of its first invoice
    count: int
    alone: bool
    invoice_number: str = ""


def next_slot(page: list[PageEntry], offset: int, budget: int, per_run: int) -> Slot:
    """The child for the page's invoices from `offset` on: a large invoice (at least `budget`
    charges, parsed) alone; otherwise the longest run of consecutive small invoices that keeps
    within `budget` charges and `per_run` invoices. Invoices the parser failed count no
    charges and ride in runs: the run fails them alone."""
    head = page[offset]
    if head.c >= budget and not head.bad:
        return Slot(first=head.i, count=1, alone=True, invoice_number=head.n)
    charges = count = 0
    for entry in page[offset:]:
        if count >= per_run or entry.i != head.i + count:
            break
        weight = 0 if entry.bad else entry.c
        if weight >= budget or (count and charges + weight > budget):
            break
        charges += weight
        count += 1
    return Slot(first=head.i, count=count, alone=False, invoice_number=head.n)


def run_identifier(content_hash: str, first: int, count: int) -> str:
    """The task identifier of a packed run: the file and the invoices it holds."""
    return f"{content_hash[:24]}:{first}+{count}"


def job_key_of(header: InvoiceHeader) -> str:
    """The shipment job an invoice belongs to: SCAC, account, and shipment ID (or the invoice
    number when the carrier sends none)."""
    return f"{header.scac}:{header.account}:{header.shipment_id or header.invoice_number}"


def invoice_blob_key(content_hash: str, index: int) -> str:
    """One invoice's blob. Its name changed when long groups began to come in chunks (``c``
    lines), so a worker that knows no chunks finds no blob, rather than skipping charges."""
    return f"parcel/{content_hash}/invoices/{index:07d}.v2.jsonl"


def legacy_invoice_blob_key(content_hash: str, index: int) -> str:
    """An invoice's blob as workers before chunked groups wrote it (whole groups only)."""
    return f"parcel/{content_hash}/invoices/{index:07d}.jsonl"


def page_blob_key(content_hash: str, page: int) -> str:
    return f"parcel/{content_hash}/pages/{page:06d}.json"


def index_blob_key(content_hash: str) -> str:
    return f"parcel/{content_hash}/index.json"


def file_blob_key(content_hash: str) -> str:
    return f"parcel/{content_hash}/file"


def child_identifier(content_hash: str, index: int) -> str:
    """The task identifier of one invoice's child: the file and the invoice's place in it."""
    return f"{content_hash[:24]}:{index}"


def audit_batches(group_count: int, batch_size: int) -> int:
    """Rate-audit activities one invoice needs: ceil(groups / batch size)."""
    return -(-group_count // batch_size)


def batch_ranges(group_count: int, batch_size: int) -> list[tuple[int, int]]:
    """The (first, last) LX sequence of each audit batch, 1-based and inclusive."""
    return [
        (start, min(start + batch_size - 1, group_count))
        for start in range(1, group_count + 1, batch_size)
    ]
