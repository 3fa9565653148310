"""The capacity shape: raise the user count step by step (`haul loadtest capacity`).

Loaded next to locustfile.py only for capacity runs (`-f locustfile.py,shapes.py`), because
Locust uses any LoadTestShape it finds. Its steps are the run's `LoadSettings.shape`
(HAUL_LT_SHAPE, set by `haul loadtest capacity`).

A step's clock starts only once its users all run: Locust has reported spawning complete
for the step's user count and the runner counts that many users (on a master, as its workers
report them). On a busy machine, or with remote workers still connecting, that takes longer
than a short step, and a clock started when the users were merely asked for measured a step
with no load in it (0 operations, taken for the cluster's limit). A step whose users do not
all run within `ready_seconds` is recorded without a ready time, and the report says the
harness was not ready. Each step's times go to the run's directory (`ShapeTimeline`), where
the parent reads the windows it evaluates.

After the last step the run ends; a distributed master (its `stop_after` set) first stops its
workers and waits for their files, so every worker's counts come home (distributed.py).
"""

from __future__ import annotations

import time
from typing import Any

from locust import LoadTestShape, events
from locust.runners import MasterRunner

from app.loadtest import distributed
from app.loadtest.models import ShapeTimeline, StepWindow
from app.loadtest.process_files import shape_timeline_file
from app.loadtest.settings import StepShape
from app.loadtest.users import run_settings

# User counts Locust reported spawning complete for, in order (this process's runner).
_spawned: list[int] = []


@events.spawning_complete.add_listener
def _on_spawning_complete(user_count: int, **_: Any) -> None:
    _spawned.append(user_count)


class StepLoadShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        settings = run_settings()
        self.shape = settings.shape or StepShape()
        self.ended_by_master = settings.stop_after > 0
        self.out = settings.out
        self.timeline = ShapeTimeline()
        self._seen = 0  # spawning-complete reports already looked at
        self._spawned_now = False  # one of them was for the current step's users

    def _begin(self, step: int, now: float) -> None:
        steps = self.timeline.steps
        last = steps[-1] if steps else None
        users = self.shape.users(step)
        steps.append(StepWindow(step=step + 1, users=users, requested_at=now))
        # The same users as a step that ran: Locust spawns nothing and reports nothing.
        self._spawned_now = last is not None and last.ready_at is not None and last.users == users
        self._seen = len(_spawned)

    def _running(self, users: int) -> bool:
        """The step's users all run: spawning complete for them, and counted by the runner."""
        if any(count == users for count in _spawned[self._seen :]):
            self._spawned_now = True
        self._seen = len(_spawned)
        return self._spawned_now and self.get_current_user_count() == users

    def _write(self) -> None:
        if self.out is not None:
            shape_timeline_file(self.out).write_text(self.timeline.model_dump_json(indent=2))

    def tick(self) -> tuple[int, float] | None:
        now = time.time()
        steps = self.timeline.steps
        if not steps:
            self._begin(0, now)
            self._write()
        current = steps[-1]
        index = current.step - 1
        if current.ended_at is None:
            if current.ready_at is None:
                if self._running(current.users):
                    current.ready_at = now
                    self._write()
                elif now - current.requested_at >= self.shape.ready_seconds:
                    current.ended_at = now  # the harness was not ready: no window to measure
            elif now - current.ready_at >= self.shape.step_seconds:
                current.ended_at = now
            if current.ended_at is not None:
                if index + 1 < self.shape.steps:
                    self._begin(index + 1, now)
                    self._write()
                    return self.shape.users(index + 1), self.shape.spawn_rate
                self._write()
        if current.ended_at is not None:
            self._end()
            return None  # Locust stops the run (and quits) when the shape says so
        return current.users, self.shape.spawn_rate

    def _end(self) -> None:
        """A master first stops its workers and collects their files, here in the shape's
        greenlet: a headless Locust quits as soon as this greenlet ends."""
        if self.ended_by_master and isinstance(self.runner, MasterRunner):
            distributed.stop_and_collect(self.runner)
