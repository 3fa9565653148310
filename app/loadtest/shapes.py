"""The capacity shape: raise the user count step by step (`haul loadtest capacity`).

Loaded next to locustfile.py only for capacity runs (`-f locustfile.py,shapes.py`), because
Locust uses any LoadTestShape it finds. Its steps are the run's `LoadSettings.shape`
(HAUL_LT_SHAPE, set by `haul loadtest capacity`); the run stops after the last step. A
distributed master (its `stop_after` set) holds the last step instead: the master ends the run
itself, so every worker's files come home (distributed.py).
"""

from __future__ import annotations

import time

from locust import LoadTestShape

from app.loadtest.process_files import shape_start_file
from app.loadtest.settings import StepShape
from app.loadtest.users import run_settings


class StepLoadShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        settings = run_settings()
        self.shape = settings.shape or StepShape()
        self.ended_by_master = settings.stop_after > 0
        self.out = settings.out
        self.recorded = False

    def _record_start(self) -> None:
        """Write when the steps' clock started: Locust's stats rows begin earlier (a master
        writes them while it waits for its workers), so the parent cannot infer it."""
        self.recorded = True
        if self.out is not None:
            started = time.time() - self.get_run_time()
            shape_start_file(self.out).write_text(f"{started:.3f}\n")

    def tick(self) -> tuple[int, float] | None:
        if not self.recorded:
            self._record_start()
        step = int(self.get_run_time() // self.shape.step_seconds)
        if step >= self.shape.steps:
            if not self.ended_by_master:
                return None
            step = self.shape.steps - 1
        return self.shape.users(step), self.shape.spawn_rate
