"""The no-op activity: returns at once, so a load test measures Temporal, not the activity."""

from __future__ import annotations

from app.domains.loadgen import TASK_QUEUE, TEAM
from app.platform.discovery import activities, activity_method


@activities(team=TEAM, task_queue=TASK_QUEUE)
class LoadgenActivities:
    @activity_method
    async def noop(self) -> None:
        return None
