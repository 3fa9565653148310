"""Inputs of the load-generation workflows (one input object per workflow)."""

from __future__ import annotations

from pydantic import BaseModel


class NoopInput(BaseModel):
    """Input of NoopActivityWorkflow; the tag only labels the run in histories."""

    tag: str = ""


class TimerInput(BaseModel):
    seconds: float = 1.0
