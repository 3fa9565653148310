"""A Locust file for the tests only: a distributed worker that takes HAUL_TEST_SPAWN_DELAY
seconds before it spawns the users of a run, as a worker on a starved node does.

Loaded beside the package's locustfile (`-f locustfile.py,slow_spawn.py`). The worker spawns
only after its `test_start` listeners return, so holding one holds the spawn.
"""

from __future__ import annotations

import os
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import WorkerRunner


@events.test_start.add_listener
def _hold_the_spawn(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, WorkerRunner):
        gevent.sleep(float(os.environ["HAUL_TEST_SPAWN_DELAY"]))
