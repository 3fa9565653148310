"""Inputs and results of the rate-audit activities (one input object each)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class AuditBatchInput(BaseModel):
    """One batch of charge groups of one revision, by LX sequence (inclusive)."""

    revision_id: int
    first_sequence: int
    last_sequence: int


class AuditBatchResult(BaseModel):
    groups: int
    discrepancies: int


class AuditSlice(BaseModel):
    """Charge groups `first`..`last` (LX sequence, inclusive) of revision `r`."""

    r: int
    first: int
    last: int


class AuditSlicesInput(BaseModel):
    """One audit batch of a packed run: slices of several revisions, at most a batch of groups."""

    slices: list[AuditSlice]


class AuditSlicesResult(BaseModel):
    groups: int = 0
    discrepancies: int = 0
    failed: dict[int, str] = Field(default_factory=dict)  # revision ID -> error


def slice_batches(revisions: list[tuple[int, int]], batch_size: int) -> list[list[AuditSlice]]:
    """(revision ID, group count) pairs cut into batches of at most `batch_size` charge groups:
    ceil(total groups / batch size) batches, a revision split across two where a batch ends."""
    batches: list[list[AuditSlice]] = []
    current: list[AuditSlice] = []
    room = batch_size
    for revision_id, groups in revisions:
        start = 1
        while start <= groups:
            take = min(room, groups - start + 1)
            current.append(AuditSlice(r=revision_id, first=start, last=start + take - 1))
            start += take
            room -= take
            if room == 0:
                batches.append(current)
                current, room = [], batch_size
    if current:
        batches.append(current)
    return batches


# A coalesced event: the revisions of one packed run that belong to one shipment job. The
# status activity records it as one invoice_revision event per revision (by revision ID), so
# it and a per-invoice event about the same revision count once.
REVISIONS_EVENT = "invoice_revisions"


class JobEvent(BaseModel):
    """One event about a shipment job: invoice_revision, task_completed or payment."""

    event_id: str
    kind: str
    payload: dict[str, Any] = Field(default_factory=dict)


class JobEventsInput(BaseModel):
    """Events for one shipment job, applied once each (keyed by event ID)."""

    job_key: str
    events: list[JobEvent]


class JobStatus(BaseModel):
    job_key: str
    audit_status: str
    revisions: int
    tasks_done: int
    paid: str
    billed: str
    open_reviews: int
    events_applied: int
