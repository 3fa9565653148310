"""Parcel activities: index a file once, read its pages, normalize an invoice, queue findings.

Files and charges move between activities through the blob store and Postgres, never through
workflow history. Bad input is raised as `ApplicationError(non_retryable=True, type=...)` with
the parser's error type, so Temporal never retries it and the failure store names it. A missing
setting is no better on a retry: the activities refuse to be built without an app database and
a blob store (so the worker does not start), and a configuration error met at run time is raised
as non-retryable too.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from typing import IO, Any

import psycopg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from app.core.blobstore import BlobNotFoundError, BlobStore
from app.core.database import Database, DatabaseNotConfiguredError, is_connection_error
from app.domains.parcel import DOMAIN, tables
from app.domains.parcel.models import (
    MESSAGE_CHARS,
    FinishInput,
    IndexInput,
    IndexResult,
    IngestSummary,
    InvoiceInput,
    NormalizeResult,
    PageEntry,
    PageRequest,
    ParserSettings,
    QueueInput,
    QueueRunInput,
    QueueRunResult,
    RunInput,
    RunItem,
    file_blob_key,
    index_blob_key,
    invoice_blob_key,
    job_key_of,
    legacy_invoice_blob_key,
    page_blob_key,
)
from app.domains.rate_audit.models import REVISIONS_EVENT
from app.domains.rate_audit.workflows import UpdateRateAuditStatusWorkflow
from app.formats.files import FileEvents, parse_file
from app.formats.invoice import (
    ChargeChunk,
    ChargeGroup,
    ChargeGroupParsed,
    ChargesParsed,
    InvoiceFailed,
    InvoiceFailure,
    InvoiceFinished,
    InvoiceHeader,
    InvoiceStarted,
    InvoiceSummary,
    ParcelInputError,
)
from app.platform.domain import activity_method
from app.platform.heartbeat import PacedHeartbeat
from app.platform.retry_on_signal import EntityEvent, EntityInput
from app.platform.worker import WorkerContext

HEARTBEAT_EVERY = 200  # invoices or charge groups between heartbeats while indexing
HEARTBEAT_BYTES = 1 << 20  # bytes of the file read between heartbeats while indexing
MAX_ENVELOPE_ISSUES = 50
CONFIG_ERROR = "HaulConfigurationError"
# Shipment-job signals one packed run's queue activity has in flight at once.
SIGNALS_AT_ONCE = 16
# What Postgres refuses for the values themselves: a retry of the same invoice fails alike.
REFUSED_BY_DATABASE = (psycopg.DataError, psycopg.errors.CheckViolation,
                       psycopg.errors.NotNullViolation)
DATABASE_REFUSED = "ParcelDatabaseRefused"


def input_error(err: ParcelInputError, file: str = "") -> ApplicationError:
    """The parser's typed error as a Temporal error that is never retried, naming the file."""
    message = f"{file}: {err.message}" if file else err.message
    return ApplicationError(message, err.details(), type=err.error_type, non_retryable=True)


def config_error(err: Exception) -> ApplicationError:
    """A setting the worker lacks: a retry on the same worker fails the same way."""
    return ApplicationError(
        f"the worker is misconfigured: {err}", type=CONFIG_ERROR, non_retryable=True
    )


def _file_label(name: str, content_hash: str) -> str:
    return f"file {name!r} (sha256 {content_hash[:12]})" if name else \
        f"file sha256 {content_hash[:12]}"


class _Heartbeating:
    """A binary stream that heartbeats as it is read, so a long charge group or a huge line
    still shows the activity alive; the SDK throttles what reaches the server."""

    def __init__(self, stream: IO[bytes], heartbeat: Callable[..., None],
                 progress: Callable[[], object]) -> None:
        self.stream, self.heartbeat, self.progress = stream, heartbeat, progress
        # The first beat after the first MiB: a heartbeat that reaches the server is a billable
        # action, and a small file is read long before any timeout could notice.
        self.read_bytes, self.next_beat = 0, HEARTBEAT_BYTES

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.read_bytes += len(data)
        if self.read_bytes >= self.next_beat:
            self.heartbeat(self.progress())
            self.next_beat = self.read_bytes + HEARTBEAT_BYTES
        return data


class _Abandon(Exception):
    """Drop a half-written blob (the parser failed the invoice it holds)."""


def _lines(stream: IO[bytes] | Any) -> Iterator[bytes]:
    if hasattr(stream, "iter_lines"):  # an S3 streaming body
        yield from stream.iter_lines(chunk_size=1 << 16)
    else:
        yield from stream


class _Indexer:
    """Streams the file's events into one blob per invoice and one manifest per page."""

    def __init__(
        self, blobs: BlobStore, input: IndexInput, heartbeat: Callable[..., None] | None = None
    ) -> None:
        self.blobs = blobs
        self.input = input
        self.heartbeat = heartbeat or (lambda *_: None)
        self.seen_groups = 0
        self.page: list[PageEntry] = []
        self.pages = 0
        self.invoices = self.charges = self.groups = self.failures = 0

    def _entry(self, entry: PageEntry) -> None:
        self.page.append(entry)
        self.invoices += 1
        if len(self.page) >= self.input.page_size:
            self._flush_page()
        if self.invoices % HEARTBEAT_EVERY == 0:
            self.heartbeat(self.invoices)

    def _flush_page(self) -> None:
        if self.page:
            body = json.dumps([e.model_dump(exclude_defaults=True) for e in self.page])
            self.blobs.put(page_blob_key(self.input.content_hash, self.pages), body.encode())
            self.pages += 1
            self.page = []

    def _failure(self, failure: InvoiceFailure) -> None:
        key = invoice_blob_key(self.input.content_hash, failure.index)
        self.blobs.put(key, (json.dumps({"f": failure.model_dump(mode="json")}) + "\n").encode())
        self.failures += 1
        self._entry(PageEntry(i=failure.index, n=failure.invoice_number or "", bad=True))

    def run(self, events: Iterator[Any]) -> None:
        pending: Any = None  # the event that ended the previous invoice's blob early
        while True:
            event = pending if pending is not None else next(events, None)
            pending = None
            if event is None:
                break
            if isinstance(event, InvoiceFailed):
                self._failure(event.failure)
                continue
            if not isinstance(event, InvoiceStarted):
                continue  # a group with no open invoice cannot happen; skip defensively
            header = event.header
            try:
                with self.blobs.writer(
                    invoice_blob_key(self.input.content_hash, header.index)
                ) as out:
                    out.write(b'{"h":' + header.model_dump_json().encode() + b"}\n")
                    for event in events:
                        if isinstance(event, ChargesParsed):
                            out.write(b'{"c":' + event.chunk.model_dump_json().encode() + b"}\n")
                        elif isinstance(event, ChargeGroupParsed):
                            out.write(b'{"g":' + event.group.model_dump_json().encode() + b"}\n")
                            self.seen_groups += 1
                            if self.seen_groups % HEARTBEAT_EVERY == 0:
                                self.heartbeat(self.invoices)
                        elif isinstance(event, InvoiceFinished):
                            summary = event.summary
                            out.write(b'{"s":' + summary.model_dump_json().encode() + b"}\n")
                            break
                        else:
                            pending = event
                            raise _Abandon
            except _Abandon:
                if not isinstance(pending, InvoiceFailed):
                    raise RuntimeError(
                        f"invoice {header.index} of the file ended without a finish or failure"
                    ) from None
                continue
            self.charges += summary.charge_count
            self.groups += summary.group_count
            self._entry(PageEntry(i=header.index, n=header.invoice_number, c=summary.charge_count))
        self._flush_page()


def read_invoice_blob(
    stream: IO[bytes] | Any,
) -> tuple[InvoiceHeader | InvoiceFailure, Iterator[ChargeChunk | ChargeGroup],
           list[InvoiceSummary]]:
    """(header or failure, the groups as a stream, a list that holds the summary once the
    groups are exhausted). A long group comes as chunks of its charges, then the group with
    the charges after them (``tables.write_revision`` takes both)."""
    lines = _lines(stream)
    first = json.loads(next(lines))
    if "f" in first:
        return InvoiceFailure.model_validate(first["f"]), iter(()), []
    header = InvoiceHeader.model_validate(first["h"])
    summary: list[InvoiceSummary] = []

    def groups() -> Iterator[ChargeChunk | ChargeGroup]:
        for raw in lines:
            line = raw.rstrip(b"\r\n")
            if line.startswith(b'{"c":'):
                yield ChargeChunk.model_validate_json(line[5:-1])
            elif line.startswith(b'{"g":'):
                yield ChargeGroup.model_validate_json(line[5:-1])
            elif line.startswith(b'{"s":'):
                summary.append(InvoiceSummary.model_validate_json(line[5:-1]))

    return header, groups(), summary


def _index_result(events: FileEvents, indexer: _Indexer, page_size: int) -> IndexResult:
    """What the pass found; refused CSV rows no invoice could own join the file's issues."""
    issues = [issue.message for issue in events.envelope_issues]
    rows = events.rows
    if rows is not None:
        issues += rows.issues
    return IndexResult(
        format=events.format.value,
        invoice_count=indexer.invoices,
        charge_count=indexer.charges,
        group_count=indexer.groups,
        parse_failures=indexer.failures,
        page_count=indexer.pages,
        page_size=page_size,
        envelope_issues=issues[:MAX_ENVELOPE_ISSUES],
        rows_read=rows.read if rows else 0,
        rows_in_invoices=rows.in_invoices if rows else 0,
        rows_refused=rows.refused if rows else 0,
    )


@DOMAIN.activities
class ParcelActivities:
    def __init__(self, ctx: WorkerContext) -> None:
        """Check the settings the activities cannot work without, so a worker that lacks them
        refuses to start rather than failing every ingestion; bad caps stop it too. The pool
        and the blob store are the worker context's, shared with the rate-audit activities."""
        self.ctx = ctx
        self.settings = ctx.settings
        self.haul = ctx.haul
        self.limits = ParserSettings().limits()
        if not ctx.database_url:
            raise DatabaseNotConfiguredError(
                "the parcel activities need the app database, and none is configured: set "
                "HAUL_DATABASE_URL (haul worker --cluster N sets it for a local cluster); this "
                "worker cannot serve the parcel task queue without it"
            )
        if not ctx.blob_dir:
            raise ValueError(
                "the parcel activities need a blob store, and none is configured: set "
                "HAUL_BLOB_DIR to a directory or to s3://bucket/prefix (haul worker --cluster N "
                "sets it for a local cluster); this worker cannot serve the parcel task queue "
                "without it"
            )

    @property
    def blobs(self) -> BlobStore:
        try:
            return self.ctx.blobs()
        except ValueError as err:
            raise config_error(err) from None

    @property
    def db(self) -> Database:
        try:
            return self.ctx.database()
        except DatabaseNotConfiguredError as err:
            raise config_error(err) from None

    @activity_method
    def index_file(self, input: IndexInput) -> IndexResult:
        """Read the file once: one blob per invoice, a manifest per page, counts in Postgres.

        File-level bad input (empty, not EDI or CSV, malformed envelope, unknown carrier) is
        raised as non-retryable, naming the segment and position where the parser says so."""
        done_key = index_blob_key(input.content_hash)
        if self.blobs.exists(done_key):
            result = IndexResult.model_validate_json(self.blobs.get(done_key))
        else:
            result = self._index(input)
            self.blobs.put(done_key, result.model_dump_json().encode())
        with self.db.connect() as conn:
            tables.upsert_file(
                conn,
                content_hash=input.content_hash,
                workflow_id=input.workflow_id,
                file_name=input.file_name,
                carrier=input.carrier or "",
                format=result.format,
                invoice_count=result.invoice_count,
                charge_count=result.charge_count,
                envelope_issues=result.envelope_issues,
            )
        return result

    def _index(self, input: IndexInput) -> IndexResult:
        """One streaming pass over the file; heartbeats every few hundred invoices or groups
        and every MiB read, so even one huge charge group keeps the activity alive."""
        indexer = _Indexer(self.blobs, input, activity.heartbeat)
        label = _file_label(input.file_name, input.content_hash)
        try:
            with self.blobs.reader(file_blob_key(input.content_hash)) as stream:
                events = parse_file(
                    _Heartbeating(stream, activity.heartbeat, lambda: indexer.invoices),
                    carrier=input.carrier, strict_envelope=input.strict_envelope,
                    limits=self.limits,
                )
                indexer.run(events)
        except ParcelInputError as err:
            raise input_error(err, label) from None
        except BlobNotFoundError as err:
            raise config_error(ValueError(
                f"{label} is not in the blob store ({err}); the worker must use the "
                "HAUL_BLOB_DIR the file was submitted to"
            )) from None
        return _index_result(events, indexer, input.page_size)

    @activity_method
    def read_page(self, input: PageRequest) -> list[PageEntry]:
        raw = json.loads(self.blobs.get(page_blob_key(input.content_hash, input.page)))
        return [PageEntry.model_validate(e) for e in raw]

    @activity_method
    def normalize_invoice(self, input: InvoiceInput) -> NormalizeResult:
        """Upsert one invoice revision, its charge groups and charges; decide which revision is
        in force. A failed parse is recorded and raised as non-retryable with its reason."""
        with self.db.connect() as conn:
            return self._normalize(conn, input.content_hash, input.index, PacedHeartbeat())

    @activity_method
    def normalize_run(self, input: RunInput) -> list[RunItem]:
        """Normalize a packed run's invoices one after another, each in its own transaction,
        and report each one's outcome: a failure is the invoice's alone, never its siblings'.

        Bad input is reported as `bad`. An error of one invoice's own is reported for the run
        to retry that invoice in a child of its own. What is no invoice's fault (the database
        unreachable, the worker misconfigured, or every invoice failing alike) fails the
        activity, and Temporal retries it; the revisions already written are found again."""
        beat = PacedHeartbeat()
        items: list[RunItem] = []
        with self.db.connect() as conn:
            for index in range(input.first, input.first + input.count):
                try:
                    norm = self._normalize(conn, input.content_hash, index, beat)
                except ApplicationError as err:
                    if not err.non_retryable or err.type == CONFIG_ERROR:
                        raise
                    detail = err.details[0] if err.details else {}
                    number = detail.get("invoice_number", "") if isinstance(detail, dict) else ""
                    items.append(RunItem(i=index, n=number or "", e=err.type or "",
                                         m=err.message[:MESSAGE_CHARS], bad=True))
                    continue
                except Exception as err:
                    if is_connection_error(err):
                        raise
                    items.append(RunItem(i=index, e=type(err).__name__,
                                         m=str(err)[:MESSAGE_CHARS]))
                    continue
                items.append(RunItem(i=index, n=norm.invoice_number, r=norm.revision_id,
                                     g=norm.group_count, c=norm.charge_count))
                beat(index)
        retryable = [item for item in items if item.e and not item.bad]
        if len(retryable) > 1 and len(retryable) == len(items):
            raise RuntimeError(
                f"every invoice of the run failed: {retryable[0].e}: {retryable[0].m}")
        return items

    def _normalize(self, conn: psycopg.Connection[Any], content_hash: str, index: int,
                   beat: Callable[..., None]) -> NormalizeResult:
        key = invoice_blob_key(content_hash, index)
        opened = contextlib.ExitStack()
        try:
            stream = opened.enter_context(self.blobs.reader(key))
        except BlobNotFoundError:  # indexed before groups were chunked: whole groups, read alike
            stream = opened.enter_context(
                self.blobs.reader(legacy_invoice_blob_key(content_hash, index)))
        with opened:
            head, groups, summary = read_invoice_blob(stream)
            if isinstance(head, InvoiceFailure):
                tables.record_invoice_failure(conn, content_hash, head)
                where = (f" at {head.segment} segment {head.position}" if head.segment else
                         f" at row {head.position}" if head.position else "")
                label = _file_label(tables.file_name(conn, content_hash), content_hash)
                raise ApplicationError(
                    f"{label}, invoice {head.invoice_number or head.index} (#{head.index} in "
                    f"the file){where}: {head.message}",
                    head.model_dump(mode="json"),
                    type=head.error_type,
                    non_retryable=True,
                )

            def total() -> InvoiceSummary:
                if not summary:
                    raise RuntimeError(f"blob {key} has no summary line; index the file again")
                return summary[0]

            try:
                invoice_id, revision_id = tables.write_revision(
                    conn, content_hash, head, groups, total, heartbeat=beat
                )
                current = tables.apply_revisions(conn, invoice_id)
            except REFUSED_BY_DATABASE as err:
                label = _file_label(tables.file_name(conn, content_hash), content_hash)
                raise ApplicationError(
                    f"{label}, invoice {head.invoice_number} (#{index} in the file): the app "
                    f"database refused it: {err.diag.message_primary or err}",
                    {"invoice_number": head.invoice_number, "index": index},
                    type=DATABASE_REFUSED, non_retryable=True,
                ) from None
            row = conn.execute(
                "select group_count, charge_count from parcel_invoice_revisions where id = %s",
                (revision_id,),
            ).fetchone()
        assert row is not None
        return NormalizeResult(
            revision_id=revision_id,
            invoice_id=invoice_id,
            group_count=int(row[0]),
            charge_count=int(row[1]),
            purpose=head.purpose.value,
            job_key=job_key_of(head),
            current=current == revision_id,
            invoice_number=head.invoice_number,
        )

    @activity_method
    async def queue_discrepancies(self, input: QueueInput) -> int:
        """Queue the revision's discrepancies for review, then tell its shipment job."""

        def queue() -> int:
            with self.db.connect() as conn:
                return tables.queue_discrepancies(conn, input.revision_id)

        queued = await asyncio.to_thread(queue)
        if input.update_job_status:
            await self.haul.signal_with_start(
                UpdateRateAuditStatusWorkflow.run,
                EntityInput(entity_key=input.job_key),
                input.job_key,
                UpdateRateAuditStatusWorkflow.on_event,
                EntityEvent(
                    event_id=f"revision:{input.revision_id}",
                    kind="invoice_revision",
                    payload={"revision_id": input.revision_id},
                ),
                task_queue=activity.info().task_queue,
            )
        return queued

    @activity_method
    async def queue_run(self, input: QueueRunInput) -> QueueRunResult:
        """Queue the discrepancies of a run's revisions, then send each shipment job one
        signal-with-start carrying all of the run's revisions of that job (not one per invoice).

        A revision that fails for a reason of its own is reported, not raised; its siblings are
        queued and signalled. Every write and event is idempotent (by group, and by event ID
        and revision ID), so a retried activity repeats nothing."""

        def queue() -> tuple[int, dict[int, str], dict[str, list[int]]]:
            queued = 0
            failed: dict[int, str] = {}
            jobs: dict[str, list[int]] = {}
            with self.db.connect() as conn:
                keys = tables.job_keys(conn, input.revision_ids)
                for revision_id in input.revision_ids:
                    try:
                        queued += tables.queue_discrepancies(conn, revision_id)
                    except Exception as err:
                        if is_connection_error(err):
                            raise
                        failed[revision_id] = f"{type(err).__name__}: {err}"[:MESSAGE_CHARS]
                        continue
                    jobs.setdefault(keys[revision_id], []).append(revision_id)
            return queued, failed, jobs

        queued, failed, jobs = await asyncio.to_thread(queue)
        if input.update_job_status:
            limit = asyncio.Semaphore(SIGNALS_AT_ONCE)
            queue_name = activity.info().task_queue

            async def tell(job_key: str, revision_ids: list[int]) -> None:
                async with limit:
                    await self.haul.signal_with_start(
                        UpdateRateAuditStatusWorkflow.run,
                        EntityInput(entity_key=job_key),
                        job_key,
                        UpdateRateAuditStatusWorkflow.on_event,
                        EntityEvent(
                            event_id=f"revisions:{input.run_key}:{job_key}",
                            kind=REVISIONS_EVENT,
                            payload={"revision_ids": revision_ids},
                        ),
                        task_queue=queue_name,
                    )

            await asyncio.gather(*(tell(k, v) for k, v in jobs.items()))
        return QueueRunResult(queued=queued, jobs=len(jobs), failed=failed)

    def _index_of(self, content_hash: str) -> IndexResult | None:
        """The file's index, when it was indexed (a rejected file may not have been)."""
        key = index_blob_key(content_hash)
        return IndexResult.model_validate_json(self.blobs.get(key)) if self.blobs.exists(key) \
            else None

    @activity_method
    def finish_ingest(self, input: FinishInput) -> IngestSummary:
        """Read the file's totals back from Postgres and close its idempotency row."""
        index = self._index_of(input.content_hash)
        with self.db.connect() as conn:
            totals = tables.file_totals(conn, input.content_hash)
            summary = IngestSummary(
                content_hash=input.content_hash,
                workflow_id=input.workflow_id,
                file_name=totals["file_name"],
                format=totals["format"],
                outcome=input.outcome,
                invoices=totals["invoices"],
                invoices_ok=totals["invoices_ok"],
                charge_groups=totals["charge_groups"],
                charges=totals["charges"],
                charges_total=totals["charges_total"],
                discrepancies=totals["discrepancies"],
                failures=input.failed,
                failure_reasons=input.failures,
                envelope_issues=totals["envelope_issues"],
                error=input.error,
                rows_read=index.rows_read if index else 0,
                rows_in_invoices=index.rows_in_invoices if index else 0,
                rows_refused=index.rows_refused if index else 0,
            )
            tables.finish_ingestion(
                conn,
                input.workflow_id,
                input.content_hash,
                input.outcome,
                summary.model_dump(mode="json"),
            )
        return summary
