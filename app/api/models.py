"""What the JSON API takes and returns, beyond the store's own models."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from app.platform.failures import Group, Redrive, StoredFailure
from app.platform.redrive import RedriveOptions


class FilterParams(BaseModel):
    """A failure filter as query or body fields; `hours` is a window ending now."""

    status: Literal["open", "resolved", "any"] = "open"
    cluster: str | None = None
    namespace: str | None = None
    workflow_type: str | None = None
    owner_team: str | None = None
    task_queue: str | None = None
    fingerprint: str | None = None
    close_status: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    hours: float | None = Field(default=None, gt=0)


class Summary(BaseModel):
    by: str
    total: int
    groups: list[Group]


class FailurePage(BaseModel):
    total: int
    limit: int
    offset: int
    items: list[StoredFailure]


class FailureDetail(BaseModel):
    failure: StoredFailure
    redrives: list[Redrive]
    temporal_ui_url: str | None


class RedriveRequest(BaseModel):
    options: RedriveOptions = Field(default_factory=RedriveOptions)


class RedriveDone(BaseModel):
    failure_id: int
    new_run_id: str
    temporal_ui_url: str | None


class BulkRedriveRequest(BaseModel):
    filter: FilterParams = Field(default_factory=FilterParams)
    options: RedriveOptions = Field(default_factory=RedriveOptions)
    per_second: float = Field(default=5.0, gt=0)
    limit: int = Field(default=100, ge=1)


class Note(BaseModel):
    note: str = Field(default="", max_length=4000)
