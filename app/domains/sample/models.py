"""Inputs and results of the sample workflows (one input object per workflow)."""

from __future__ import annotations

from pydantic import BaseModel


class GreetingInput(BaseModel):
    name: str
    # Seconds the activity sleeps, heartbeating; lets tests kill workers mid-activity.
    work_seconds: float = 0.0
    # Make the activity fail for good, to exercise failure handling and redrive.
    fail: bool = False


class GreetingResult(BaseModel):
    greeting: str
    attempts: int


class LedgerBatch(BaseModel):
    entity_key: str
    event_ids: list[str]
    work_seconds: float = 0.0
    # Signal the entity again with this event ID as the activity's last step.
    echo_event_id: str | None = None
