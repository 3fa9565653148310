"""The no-op activity: returns at once, so a load test measures Temporal, not the activity."""

from __future__ import annotations

from app.domains.loadgen import DOMAIN
from app.platform.domain import activity_method


@DOMAIN.activities
class LoadgenActivities:
    # An explicit no-argument constructor: the worker builder reads __init__'s signature, and
    # object's own (*args, **kwargs) would make it pass a context this class does not take.
    def __init__(self) -> None:
        pass

    @activity_method
    async def noop(self) -> None:
        return None
