"""Distributed Locust: one master (`haul loadtest run --expect-workers N`) and N workers
(`haul loadtest worker`), on one host or many.

Three things plain Locust does not do for haul:

- **Settings travel with the run.** A worker is started once and serves many runs, so the
  run's target and settings (run tag, fan-in shape, wait) come from the master: the parent
  puts a `Handoff` (settings.py) in `--haul-handoff` (JSON), Locust sends custom arguments to
  each worker with the spawn order, and `take_handoff` points the worker at the target and
  makes the master's `LoadSettings` the run's before any user starts. Only the target's
  coordinates and the forwarded settings cross the wire; credentials never do.
- **Each worker's files come home.** The accounting needs every process's bridge stats and
  parcel root IDs. A worker sends them to the master when its users stop; the master writes
  them into the run's directory (names checked, size bounded).
- **The run ends with every operation counted.** With `-t`, a headless master quits its
  workers and waits half a second, so operations still finishing in the stop timeout, and
  the workers' files, are lost. The run's `stop_after` makes the master stop (waiting for every
  worker to report its users stopped), wait for every worker's files, and only then quit; a
  capacity run's shape does the same from its own greenlet after its last step (shapes.py),
  since its steps wait for their users and a headless Locust quits as soon as that greenlet
  ends. Locust's own stop ends when the workers' stats report no users, which a busy worker
  can send before it has sent its files.
- **Users run from the moment they are reported.** A worker connects to the target as soon as
  it takes the handoff, before it spawns a user, and reports its stats every second rather than
  Locust's three: a capacity step's clock starts when the workers report its users spawned,
  and its window counts what they report.
- **A worker leaves with its run.** After a stop a Locust worker sleeps for the stop timeout
  before it reads another message, so the master's quit would reach it only after the master
  is gone (and the worker gives up a minute later). The master therefore says first that this
  stop ends the run; the worker then leaves right after reporting its users stopped, and
  `haul loadtest locust-worker` starts a fresh one for the next run.
"""

from __future__ import annotations

import os
import time
from typing import Any

import gevent
from locust import events, runners
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from app.loadtest.process_files import own_files, write_shipped
from app.loadtest.settings import HANDOFF_VAR, Handoff
from app.loadtest.users import run_settings, use_run_settings, write_stats

FILES_MESSAGE = "haul_files"
LAST_STOP_MESSAGE = "haul_last_stop"
# Seconds a leaving worker allows its "users stopped" report to go out.
LEAVE_DELAY_SECONDS = 1.0
# Seconds between a worker's stats reports (Locust's default is 3; its maintainers point to
# this module variable for changing it).
REPORT_INTERVAL_SECONDS = 1.0
# Seconds a stopping master waits, beyond the stop timeout, for each worker's files.
FILES_WAIT_SECONDS = 30.0
_last_stop: list[bool] = []
# On a master: the workers whose files came home in this run.
_files_from: set[str] = set()


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--haul-handoff",
        env_var=HANDOFF_VAR,
        default="",
        include_in_web_ui=False,
        help="haul: the run's target and settings (a Handoff, JSON), sent to every worker",
    )


def take_handoff(environment: Environment) -> bool:
    """On a worker: take the master's target and settings for this run, and say so (False
    elsewhere)."""
    if not isinstance(environment.runner, WorkerRunner):
        return False
    raw = getattr(environment.parsed_options, "haul_handoff", "")
    if raw:
        use_run_settings(Handoff.model_validate_json(raw).apply(os.environ))
    return True


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(FILES_MESSAGE, _receive_files)
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(LAST_STOP_MESSAGE, lambda **_: _last_stop.append(True))
        runners.WORKER_REPORT_INTERVAL = REPORT_INTERVAL_SECONDS


def _receive_files(environment: Environment, msg: Any, **_: Any) -> None:
    _files_from.add(msg.node_id)
    out = run_settings().out
    if out is None or not isinstance(msg.data, dict):
        return
    refused = write_shipped(out, msg.data)
    if refused:
        print(f"haul: refused files from worker {msg.node_id}: {refused}", flush=True)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    settings = run_settings()
    # A capacity shape ends the run itself after its last step (its steps wait for users).
    if isinstance(runner, MasterRunner) and settings.stop_after > 0 and settings.shape is None:
        gevent.spawn_later(settings.stop_after, _stop_then_quit, runner)


def _stop_then_quit(runner: MasterRunner) -> None:
    stop_and_collect(runner)
    runner.quit()


def stop_and_collect(runner: MasterRunner) -> None:
    """Stop a distributed run and wait until every worker's files are in (the caller then
    quits). A capacity shape calls this from its own greenlet: stopping from elsewhere ends
    that greenlet, and a headless Locust quits the moment it ends, files or not."""
    taking_part = set(runner.clients.keys())
    runner.send_message(LAST_STOP_MESSAGE)
    # stop() waits (up to the stop timeout + 60 s) until the workers' reports count no user;
    # a worker sends its files when its users have stopped, which can come after that.
    runner.stop()
    deadline = time.monotonic() + runner.environment.stop_timeout + FILES_WAIT_SECONDS
    while not taking_part <= _files_from and time.monotonic() < deadline:
        gevent.sleep(0.2)
    missing = sorted(taking_part - _files_from)
    if missing:
        print(f"haul: no files came from worker(s) {missing}; their counts are missing", flush=True)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    out = run_settings().out
    if not isinstance(runner, WorkerRunner):
        return
    if out is not None:
        write_stats()
        runner.send_message(FILES_MESSAGE, own_files(out))
    if _last_stop:
        # Leave once the report that follows this event has gone out: ending the runner's
        # greenlets ends the worker, as Locust's own quit does.
        gevent.spawn_later(LEAVE_DELAY_SECONDS, runner.greenlet.kill, block=True)
