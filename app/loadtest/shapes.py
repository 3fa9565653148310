"""The capacity shape: raise the user count step by step (`haul loadtest capacity`).

Loaded next to locustfile.py only for capacity runs (`-f locustfile.py,shapes.py`), because
Locust uses any LoadTestShape it finds. Settings (environment, set by `haul loadtest capacity`):
  HAUL_LT_STEP_START    users in the first step
  HAUL_LT_STEP_USERS    users added per step
  HAUL_LT_STEP_SECONDS  length of one step
  HAUL_LT_STEPS         number of steps; the run stops after the last one
  HAUL_LT_SPAWN_RATE    users started per second when a step begins
A distributed master (HAUL_LT_STOP_AFTER set) holds the last step instead of stopping: the
master ends the run itself, so every worker's files come home (distributed_mode.py).
"""

from __future__ import annotations

import os

from locust import LoadTestShape


class StepLoadShape(LoadTestShape):
    start_users = int(os.environ.get("HAUL_LT_STEP_START", "5"))
    step_users = int(os.environ.get("HAUL_LT_STEP_USERS", "5"))
    step_seconds = float(os.environ.get("HAUL_LT_STEP_SECONDS", "20"))
    steps = int(os.environ.get("HAUL_LT_STEPS", "5"))
    spawn_rate = float(os.environ.get("HAUL_LT_SPAWN_RATE", "50"))
    ended_by_master = bool(os.environ.get("HAUL_LT_STOP_AFTER"))

    def tick(self) -> tuple[int, float] | None:
        step = int(self.get_run_time() // self.step_seconds)
        if step >= self.steps:
            if not self.ended_by_master:
                return None
            step = self.steps - 1
        return self.start_users + step * self.step_users, self.spawn_rate
