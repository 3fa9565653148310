"""Inputs and results of the rate-audit activities (one input object each)."""

from __future__ import annotations

from pydantic import BaseModel

from app.platform.retry_on_signal import EntityEvent


class AuditBatchInput(BaseModel):
    """One batch of charge groups of one revision, by LX sequence (inclusive)."""

    revision_id: int
    first_sequence: int
    last_sequence: int


class AuditBatchResult(BaseModel):
    groups: int
    discrepancies: int


class JobEventsInput(BaseModel):
    """Events for one shipment job, applied once each (keyed by event ID)."""

    job_key: str
    events: list[EntityEvent]


class JobStatus(BaseModel):
    job_key: str
    audit_status: str
    revisions: int
    tasks_done: int
    paid: str
    billed: str
    open_reviews: int
    events_applied: int
