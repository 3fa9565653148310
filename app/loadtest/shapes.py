"""The capacity shape: raise the user count step by step (`haul loadtest capacity`).

Loaded next to locustfile.py only for capacity runs (`-f locustfile.py,shapes.py`), because
Locust uses any LoadTestShape it finds. Its steps are the run's `LoadSettings.shape`
(HAUL_LT_SHAPE, set by `haul loadtest capacity`); the run stops after the last step. A
distributed master (its `stop_after` set) holds the last step instead: the master ends the run
itself, so every worker's files come home (distributed.py).
"""

from __future__ import annotations

from locust import LoadTestShape

from app.loadtest.settings import StepShape
from app.loadtest.users import run_settings


class StepLoadShape(LoadTestShape):
    def __init__(self) -> None:
        super().__init__()
        settings = run_settings()
        self.shape = settings.shape or StepShape()
        self.ended_by_master = settings.stop_after > 0

    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // self.shape.step_seconds)
        if step >= self.shape.steps:
            if not self.ended_by_master:
                return None
            step = self.shape.steps - 1
        return self.shape.users(step), self.shape.spawn_rate
