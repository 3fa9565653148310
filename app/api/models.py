"""What the JSON API takes and returns, beyond the store's own models."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from app.platform.failures import FailureFilter, Group, Redrive, StoredFailure
from app.platform.redrive import RedriveOptions


class FilterParams(FailureFilter):
    """The store's failure filter as query or body fields: `status` may also be `any` (the
    store's None), and `hours` is a window ending now."""

    # Wider than the store's field (which says "any" as None), in the same place.
    status: Literal["open", "resolved", "any"] = "open"  # type: ignore[assignment]
    hours: float | None = Field(default=None, gt=0)

    def failure_filter(self, now: datetime) -> FailureFilter:
        """The store's filter: `any` as None, and `hours` folded into `since`."""
        since = self.since
        if self.hours is not None:
            window = now - timedelta(hours=self.hours)
            since = max(since, window) if since else window
        fields = self.model_dump(include=set(FailureFilter.model_fields))
        status = None if self.status == "any" else self.status
        return FailureFilter.model_validate({**fields, "status": status, "since": since})


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
