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
  worker to report its users stopped) and only then quit.
- **A worker leaves with its run.** After a stop a Locust worker sleeps for the stop timeout
  before it reads another message, so the master's quit would reach it only after the master
  is gone (and the worker gives up a minute later). The master therefore says first that this
  stop ends the run; the worker then leaves right after reporting its users stopped, and
  `haul loadtest locust-worker` starts a fresh one for the next run.
"""

from __future__ import annotations

import os
from typing import Any

import gevent
from locust import events
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from app.loadtest.process_files import own_files, write_shipped
from app.loadtest.settings import HANDOFF_VAR, Handoff
from app.loadtest.users import run_settings, use_run_settings, write_stats

FILES_MESSAGE = "haul_files"
LAST_STOP_MESSAGE = "haul_last_stop"
# Seconds a leaving worker allows its "users stopped" report to go out.
LEAVE_DELAY_SECONDS = 1.0
_last_stop: list[bool] = []


@events.init_command_line_parser.add_listener
def _arguments(parser: Any) -> None:
    parser.add_argument(
        "--haul-handoff",
        env_var=HANDOFF_VAR,
        default="",
        include_in_web_ui=False,
        help="haul: the run's target and settings (a Handoff, JSON), sent to every worker",
    )


def take_handoff(environment: Environment) -> None:
    """On a worker: take the master's target and settings for this run (a no-op elsewhere)."""
    if not isinstance(environment.runner, WorkerRunner):
        return
    raw = getattr(environment.parsed_options, "haul_handoff", "")
    if raw:
        use_run_settings(Handoff.model_validate_json(raw).apply(os.environ))


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        environment.runner.register_message(FILES_MESSAGE, _receive_files)
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.register_message(LAST_STOP_MESSAGE, lambda **_: _last_stop.append(True))


def _receive_files(environment: Environment, msg: Any, **_: Any) -> None:
    out = run_settings().out
    if out is None or not isinstance(msg.data, dict):
        return
    refused = write_shipped(out, msg.data)
    if refused:
        print(f"haul: refused files from worker {msg.node_id}: {refused}", flush=True)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    after = run_settings().stop_after
    if isinstance(runner, MasterRunner) and after > 0:
        gevent.spawn_later(after, _stop_then_quit, runner)


def _stop_then_quit(runner: MasterRunner) -> None:
    # stop() waits (up to the stop timeout + 60 s) until every worker reports its users
    # stopped; each worker sends its files before that report, so they are all in by now.
    runner.send_message(LAST_STOP_MESSAGE)
    runner.stop()
    runner.quit()


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
