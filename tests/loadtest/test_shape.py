"""The capacity shape on Locust's own local runner, with idle users (no cluster): a step's
window opens when its users run, including a step with as many users as the one before,
which Locust spawns nothing for. Locust runs in a subprocess, since importing it patches
this interpreter."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.loadtest.models import ShapeTimeline
from app.loadtest.process_files import shape_timeline_file
from app.loadtest.settings import StepShape

RUN_SHAPE = """
import locust
from locust import User, constant, task
from locust.env import Environment

from app.loadtest.shapes import StepLoadShape


class Idle(User):
    wait_time = constant(0.5)

    @task
    def idle(self) -> None:
        pass


env = Environment(user_classes=[Idle], shape_class=StepLoadShape(), events=locust.events)
runner = env.create_local_runner()
runner.start_shape()
runner.shape_greenlet.join()
runner.quit()
"""


def _run(tmp_path: Path, shape: StepShape) -> ShapeTimeline:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAUL_LT_")}
    env |= {"HAUL_LT_SHAPE": shape.model_dump_json(), "HAUL_LT_OUT": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", RUN_SHAPE], env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    timeline = ShapeTimeline.read(shape_timeline_file(tmp_path))
    assert timeline is not None, done.stderr
    return timeline


def test_a_step_with_the_users_of_the_last_one_runs_at_once(tmp_path: Path) -> None:
    shape = StepShape(step_start=2, step_users=0, steps=2, step_seconds=2, ready_seconds=30)
    timeline = _run(tmp_path, shape)
    assert [(w.step, w.users) for w in timeline.steps] == [(1, 2), (2, 2)]
    for w in timeline.steps:
        assert w.ready_at is not None and w.ended_at is not None, w
        assert w.requested_at <= w.ready_at <= w.ended_at - shape.step_seconds, w
