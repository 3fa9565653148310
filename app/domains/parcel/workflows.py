"""Parcel workflows: the splitter (one file), the packed run, and the per-invoice child.

`ParcelIngest` indexes the file once (an activity streams it into per-invoice blobs and page
manifests), then reads the manifests page by page with a cursor and starts, at most
`max_concurrency` at a time, one `ParcelInvoiceRun` child per run of consecutive small invoices
(up to a charge budget) and one `ParcelInvoice` child per large invoice; a file whose ingestion
began before packed runs (no `packed` in its input), or that an older worker began (the
`parcel-packed-runs` patch), goes on with one `ParcelInvoice` per invoice. A failing invoice is
counted and recorded, never fatal to its siblings. After `children_per_run` starts (or when the
server suggests it) it stops starting, lets the running children finish, and continues as new
with cursor and counts, so continue-as-new never terminates a child and no run's history grows
without bound.

`ParcelInvoiceRun` does each step once for all its invoices, with an outcome per invoice, and
sends an invoice a step failed on alone, to its own `ParcelInvoice`. `ParcelInvoice` normalizes
its invoice, audits the charge groups in batches, and queues the discrepancies for review. Only
keys and counts pass through history.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from app.domains.parcel import DOMAIN
    from app.domains.parcel.activities import ParcelActivities
    from app.domains.parcel.models import (
        FAILURE_SAMPLE,
        MESSAGE_CHARS,
        ChildFailure,
        FinishInput,
        IndexInput,
        IngestInput,
        IngestProgress,
        IngestSummary,
        InvoiceInput,
        InvoiceOutcome,
        InvoiceState,
        PageEntry,
        PageRequest,
        QueueInput,
        QueueRunInput,
        QueueRunResult,
        RunInput,
        RunItem,
        RunOutcome,
        Slot,
        batch_ranges,
        child_identifier,
        next_slot,
        run_identifier,
    )
    from app.domains.rate_audit.activities import RateAuditActivities
    from app.domains.rate_audit.models import AuditBatchInput, AuditSlicesInput, slice_batches
    from app.formats.files import NON_RETRYABLE_ERROR_TYPES
    from app.platform.ids import workflow_id

INVOICE_WORKFLOW = "ParcelInvoice"
RUN_WORKFLOW = "ParcelInvoiceRun"
# Continue as new before this many history events even if children_per_run is not reached.
HISTORY_LIMIT = 40_000

_SHORT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=20)
_LONG = timedelta(hours=2)
# Long activities heartbeat every few hundred groups; a lost worker is noticed this fast.
HEARTBEAT_TIMEOUT = timedelta(seconds=30)

# Packed runs (ParcelInvoiceRun): a workflow.patched() change ID, 2 actions per splitter run.
PACKED_RUNS = "parcel-packed-runs"


def _non_retryable(err: ActivityError) -> ApplicationError | None:
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.non_retryable:
        return cause
    return None


def _failure(index: int, number: str, err: BaseException) -> ChildFailure:
    cause = err.cause if isinstance(err, ChildWorkflowError | ActivityError) else err
    return ChildFailure(
        index=index,
        invoice_number=number,
        error_type=getattr(cause, "type", None) or type(cause).__name__,
        message=getattr(cause, "message", None) or str(cause or err),
    )


async def invoice_alone(
    content_hash: str, index: int, number: str, audit_batch_size: int,
    update_job_status: bool, max_attempts: int,
) -> ChildFailure | None:
    """One invoice in a child of its own (`ParcelInvoice`, ID by file and index): None when
    it succeeded, now or in an earlier ingestion of the file, else why it failed for good."""
    try:
        await workflow.execute_child_workflow(
            INVOICE_WORKFLOW,
            InvoiceInput(
                content_hash=content_hash,
                index=index,
                invoice_number=number,
                audit_batch_size=audit_batch_size,
                update_job_status=update_job_status,
            ),
            id=workflow_id(INVOICE_WORKFLOW, child_identifier(content_hash, index)),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=2),
                maximum_attempts=max_attempts,
                non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
            ),
            result_type=InvoiceOutcome,
        )
    except WorkflowAlreadyStartedError:
        return None  # it completed in an earlier ingestion of this file (a redrive)
    except ChildWorkflowError as err:
        return _failure(index, number, err)
    return None


@DOMAIN.workflow(name="ParcelIngest")
class ParcelIngestWorkflow:
    """The splitter: one child per invoice of one file, with bounded concurrency."""

    def __init__(self) -> None:
        self._input: IngestInput | None = None
        self._running = 0
        self._phase = "starting"
        self._tasks: set[asyncio.Task[None]] = set()

    @workflow.query
    def progress(self) -> IngestProgress:
        inp = self._input
        index = inp.index if inp else None
        return IngestProgress(
            invoices=index.invoice_count if index else 0,
            charges=index.charge_count if index else 0,
            done=inp.done if inp else 0,
            failed=inp.failed if inp else 0,
            running=self._running,
            cursor=inp.cursor if inp else 0,
            run=inp.run if inp else 1,
            phase=self._phase,
        )

    @workflow.run
    async def run(self, input: IngestInput) -> IngestSummary:
        self._input = input
        wf_id = workflow.info().workflow_id
        settings = input.settings
        if input.index is None:
            self._phase = "indexing"
            try:
                input.index = await workflow.execute_activity_method(
                    ParcelActivities.index_file,
                    IndexInput(
                        content_hash=input.content_hash,
                        workflow_id=wf_id,
                        file_name=input.file_name,
                        carrier=input.carrier,
                        strict_envelope=input.strict_envelope,
                        page_size=settings.page_size,
                    ),
                    start_to_close_timeout=_LONG,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=RetryPolicy(
                        initial_interval=timedelta(seconds=1),
                        maximum_attempts=5,
                        non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
                    ),
                )
            except ActivityError as err:
                cause = _non_retryable(err) or err
                message = getattr(cause, "message", str(cause))
                kind = getattr(cause, "type", None) or "ParcelIndexFailed"
                self._phase = "rejected"
                await self._finish(wf_id, "rejected", f"{kind}: {message}")
                details = getattr(cause, "details", ())
                raise ApplicationError(
                    f"the file was rejected: {message}", *details, type=kind, non_retryable=True
                ) from err
        index = input.index
        assert index is not None
        self._phase = "running"
        # The starter asks for packed runs; the patch keeps a run an older worker began
        # without them on that path when a newer worker replays it (a rolling deploy).
        await self._start_children(input, packed=input.packed and workflow.patched(PACKED_RUNS))
        # Let in-flight children finish: continue-as-new would terminate them.
        self._phase = "draining"
        await workflow.wait_condition(lambda: self._running == 0)
        if input.cursor < index.invoice_count:
            await workflow.wait_condition(workflow.all_handlers_finished)
            input.run += 1
            workflow.continue_as_new(input)
        self._phase = "finishing"
        summary = await self._finish(wf_id, "completed", "")
        self._phase = "done"
        return summary

    async def _page(self, input: IngestInput, page_no: int) -> list[PageEntry]:
        return await workflow.execute_activity_method(
            ParcelActivities.read_page,
            PageRequest(content_hash=input.content_hash, page=page_no),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=_SHORT,
        )

    async def _start_children(self, input: IngestInput, packed: bool) -> None:
        """Walk the manifests from the cursor, page by page, starting one child per step: a
        packed run of small invoices or a large invoice (`packed`), else one per invoice (how
        a file ingested before packed runs goes on). Both shapes issue the same commands in the
        same order: a page read when the cursor enters a page, then that page's children."""
        index, settings = input.index, input.settings
        assert index is not None
        started = 0
        page_no = -1
        page: list[PageEntry] = []
        while input.cursor < index.invoice_count:
            if started >= settings.children_per_run or self._history_full():
                break
            wanted = input.cursor // index.page_size
            if wanted != page_no:
                page = await self._page(input, wanted)
                page_no = wanted
            offset = input.cursor - wanted * index.page_size
            if packed:
                slot = next_slot(
                    page, offset, settings.run_charge_budget, settings.invoices_per_run
                )
                count, child = slot.count, functools.partial(self._slot, input, slot)
            else:
                count, child = 1, functools.partial(self._child, input, page[offset])
            await workflow.wait_condition(lambda: self._running < settings.max_concurrency)
            self._running += 1
            task = asyncio.create_task(child())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            input.cursor += count
            started += 1

    async def _slot(self, input: IngestInput, slot: Slot) -> None:
        settings = input.settings
        failures: list[ChildFailure] = []
        try:
            if slot.alone:
                failure = await invoice_alone(
                    input.content_hash, slot.first, slot.invoice_number,
                    settings.audit_batch_size, settings.update_job_status,
                    settings.child_max_attempts,
                )
                failures = [failure] if failure else []
            else:
                failures = await self._run(input, slot)
        finally:
            self._running -= 1
        input.failed += len(failures)
        input.done += slot.count - len(failures)
        room = FAILURE_SAMPLE - len(input.failures)
        input.failures.extend(failures[: max(0, room)])

    async def _run(self, input: IngestInput, slot: Slot) -> list[ChildFailure]:
        """A packed run's failed invoices; all of them when the run itself failed for good."""
        settings = input.settings
        try:
            outcome = await workflow.execute_child_workflow(
                RUN_WORKFLOW,
                RunInput(
                    content_hash=input.content_hash,
                    first=slot.first,
                    count=slot.count,
                    audit_batch_size=settings.audit_batch_size,
                    update_job_status=settings.update_job_status,
                    child_max_attempts=settings.child_max_attempts,
                ),
                id=workflow_id(RUN_WORKFLOW,
                               run_identifier(input.content_hash, slot.first, slot.count)),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    maximum_attempts=settings.child_max_attempts,
                ),
                result_type=RunOutcome,
            )
        except WorkflowAlreadyStartedError:
            return []  # it completed in an earlier ingestion of this file (a redrive)
        except ChildWorkflowError as err:
            return [_failure(i, "", err) for i in range(slot.first, slot.first + slot.count)]
        return outcome.failures

    async def _finish(self, wf_id: str, outcome: str, error: str) -> IngestSummary:
        assert self._input is not None
        return await workflow.execute_activity_method(
            ParcelActivities.finish_ingest,
            FinishInput(
                content_hash=self._input.content_hash,
                workflow_id=wf_id,
                outcome=outcome,
                error=error,
                failed=self._input.failed,
                failures=self._input.failures,
            ),
            start_to_close_timeout=timedelta(seconds=120),
            retry_policy=_SHORT,
        )

    async def _child(self, input: IngestInput, entry: PageEntry) -> None:
        settings = input.settings
        try:
            await workflow.execute_child_workflow(
                INVOICE_WORKFLOW,
                InvoiceInput(
                    content_hash=input.content_hash,
                    index=entry.i,
                    invoice_number=entry.n,
                    audit_batch_size=settings.audit_batch_size,
                    update_job_status=settings.update_job_status,
                ),
                id=workflow_id(INVOICE_WORKFLOW, child_identifier(input.content_hash, entry.i)),
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(seconds=2),
                    maximum_attempts=settings.child_max_attempts,
                    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
                ),
                result_type=InvoiceOutcome,
            )
            input.done += 1
        except WorkflowAlreadyStartedError:
            input.done += 1  # it completed in an earlier ingestion of this file (a redrive)
        except ChildWorkflowError as err:
            input.failed += 1
            cause = err.cause
            if len(input.failures) < FAILURE_SAMPLE:
                input.failures.append(
                    ChildFailure(
                        index=entry.i,
                        invoice_number=entry.n,
                        error_type=getattr(cause, "type", None) or type(cause).__name__,
                        message=getattr(cause, "message", None) or str(cause or err),
                    )
                )
        finally:
            self._running -= 1

    @staticmethod
    def _history_full() -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() >= HISTORY_LIMIT
            or info.is_continue_as_new_suggested()
        )


# Not sandboxed: one runs per invoice, and the sandbox's per-run module re-import costs more
# than the invoice's own work. The code below touches nothing but workflow APIs and the
# models and activity references passed through above.
@DOMAIN.workflow(name=INVOICE_WORKFLOW, sandboxed=False)
class ParcelInvoiceWorkflow:
    """One invoice: normalize, rate-audit in batches of charge groups, queue discrepancies."""

    @workflow.run
    async def run(self, input: InvoiceInput) -> InvoiceOutcome:
        try:
            norm = await workflow.execute_activity_method(
                ParcelActivities.normalize_invoice,
                input,
                start_to_close_timeout=_LONG,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=_SHORT,
            )
            ranges = batch_ranges(norm.group_count, input.audit_batch_size)
            for first, last in ranges:
                await workflow.execute_activity_method(
                    RateAuditActivities.audit_charge_groups,
                    AuditBatchInput(
                        revision_id=norm.revision_id, first_sequence=first, last_sequence=last
                    ),
                    start_to_close_timeout=_LONG,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=_SHORT,
                )
            queued = await workflow.execute_activity_method(
                ParcelActivities.queue_discrepancies,
                QueueInput(
                    content_hash=input.content_hash,
                    index=input.index,
                    revision_id=norm.revision_id,
                    job_key=norm.job_key,
                    update_job_status=input.update_job_status,
                ),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=_SHORT,
            )
        except ActivityError as err:
            cause = _non_retryable(err)
            if cause is None:
                raise
            # Bad input: fail this invoice for good, with the parser's type and reason.
            raise ApplicationError(
                cause.message, *cause.details, type=cause.type, non_retryable=True
            ) from err
        return InvoiceOutcome(
            index=input.index,
            revision_id=norm.revision_id,
            groups=norm.group_count,
            charges=norm.charge_count,
            audit_batches=len(ranges),
            discrepancies=queued,
        )


# Not sandboxed, for the reason ParcelInvoice is not.
@DOMAIN.workflow(name=RUN_WORKFLOW, sandboxed=False)
class ParcelInvoiceRunWorkflow:
    """A packed run of consecutive small invoices: one activity per step for all of them.

    normalize_run, then audit_slices per batch of charge groups across the run, then
    queue_run (review queue, and one status signal per shipment job). Every step reports each
    invoice's outcome; an invoice a step failed goes on alone, in its own `ParcelInvoice`
    child with that workflow's retries, so a bad invoice lands in the failure inbox under its
    own ID and is redriven alone, while its siblings finish here."""

    def __init__(self) -> None:
        self._states: dict[int, InvoiceState] = {}

    @workflow.query
    def outcomes(self) -> list[InvoiceState]:
        """Every invoice of the run, with its step or its outcome."""
        return list(self._states.values())

    def _set(self, index: int, status: str, **fields: object) -> None:
        self._states[index] = self._states[index].model_copy(update={"status": status, **fields})

    @workflow.run
    async def run(self, input: RunInput) -> RunOutcome:
        indices = range(input.first, input.first + input.count)
        self._states = {i: InvoiceState(index=i) for i in indices}
        alone: dict[int, str] = {}  # index -> why it goes on alone
        try:
            items = await workflow.execute_activity_method(
                ParcelActivities.normalize_run,
                input,
                start_to_close_timeout=_LONG,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=_SHORT,
            )
        except ActivityError as err:
            items = []
            alone = {i: f"normalize_run failed: {_failure(i, '', err).message}" for i in indices}
        ok: list[RunItem] = []
        for item in items:
            self._set(item.i, "normalized" if item.r else "alone", invoice_number=item.n,
                      revision_id=item.r, error_type=item.e, message=item.m)
            if item.r:
                ok.append(item)
            else:
                alone[item.i] = item.m
        audited = await self._audit(input, ok, alone)
        queued = await self._queue(input, audited, alone)
        failures = [f for f in await asyncio.gather(*(
            self._alone(input, i) for i in sorted(alone)
        )) if f is not None]
        return RunOutcome(
            invoices=input.count,
            ok=input.count - len(failures),
            alone=len(alone),
            groups=sum(item.g for item in audited),
            charges=sum(item.c for item in audited),
            audit_batches=len(slice_batches([(x.r, x.g) for x in ok], input.audit_batch_size)),
            discrepancies=queued.queued,
            jobs=queued.jobs,
            failures=failures,
        )

    async def _audit(
        self, input: RunInput, ok: list[RunItem], alone: dict[int, str]
    ) -> list[RunItem]:
        """Audit every normalized revision in batches of charge groups; what is left of `ok`."""
        failed: dict[int, str] = {}
        for batch in slice_batches([(x.r, x.g) for x in ok], input.audit_batch_size):
            try:
                result = await workflow.execute_activity_method(
                    RateAuditActivities.audit_slices,
                    AuditSlicesInput(slices=batch),
                    start_to_close_timeout=_LONG,
                    heartbeat_timeout=HEARTBEAT_TIMEOUT,
                    retry_policy=_SHORT,
                )
                failed.update(result.failed)
            except ActivityError as err:
                failed.update({s.r: f"audit failed: {err.cause or err}" for s in batch})
        left = []
        for item in ok:
            if item.r in failed:
                alone[item.i] = failed[item.r][:MESSAGE_CHARS]
                self._set(item.i, "alone", message=alone[item.i])
            else:
                self._set(item.i, "audited")
                left.append(item)
        return left

    async def _queue(
        self, input: RunInput, audited: list[RunItem], alone: dict[int, str]
    ) -> QueueRunResult:
        if not audited:
            return QueueRunResult()
        try:
            result = await workflow.execute_activity_method(
                ParcelActivities.queue_run,
                QueueRunInput(
                    content_hash=input.content_hash,
                    run_key=run_identifier(input.content_hash, input.first, input.count),
                    revision_ids=[x.r for x in audited],
                    update_job_status=input.update_job_status,
                ),
                start_to_close_timeout=timedelta(seconds=120),
                retry_policy=_SHORT,
            )
        except ActivityError as err:
            result = QueueRunResult(failed={x.r: f"queue failed: {err.cause or err}"
                                            for x in audited})
        for item in audited:
            if item.r in result.failed:
                alone[item.i] = result.failed[item.r][:MESSAGE_CHARS]
                self._set(item.i, "alone", message=alone[item.i])
            else:
                self._set(item.i, "done")
        return result

    async def _alone(self, input: RunInput, index: int) -> ChildFailure | None:
        number = self._states[index].invoice_number
        failure = await invoice_alone(
            input.content_hash, index, number, input.audit_batch_size,
            input.update_job_status, input.child_max_attempts,
        )
        if failure is None:
            self._set(index, "done")
        else:
            self._set(index, "failed", error_type=failure.error_type,
                      message=failure.message[:MESSAGE_CHARS])
        return failure
