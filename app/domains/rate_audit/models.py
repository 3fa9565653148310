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
