"""Heartbeats paced by time rather than by work done.

A heartbeat that reaches the server is a billable action (`grpc_RecordActivityTaskHeartbeat`),
and the SDK sends the first one of an attempt at once. The server only needs a heartbeat before
the heartbeat timeout runs out, so an activity that finishes within `after` seconds (a third of
the usual 30-second timeout) sends none; a longer one beats from then on, throttled by the SDK.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from temporalio import activity

HEARTBEAT_AFTER = 10.0  # seconds; parcel activities use a 30-second heartbeat timeout


class PacedHeartbeat:
    """A heartbeat callable that stays silent for the first `after` seconds of the attempt."""

    def __init__(
        self, after: float | None = None, beat: Callable[..., None] | None = None
    ) -> None:
        # read when made, not when defined, so a test can make every call beat
        self.after = HEARTBEAT_AFTER if after is None else after
        self.beat = beat or activity.heartbeat
        self.started = time.monotonic()

    def __call__(self, *details: Any) -> None:
        if time.monotonic() - self.started >= self.after:
            self.beat(*details)
