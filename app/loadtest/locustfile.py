"""haul's Locust scenarios: weighted TemporalUser classes (see app/loadtest/scenarios.py).

Run through `haul loadtest run --scenario S ...`, which picks the classes, sets the target
(TEMPORAL_* / envconfig) and the run tag, and accounts for the actions afterwards. Workers run
in their own processes (`haul worker`), never here.

Settings: one `LoadSettings` (app/loadtest/settings.py, HAUL_LT_* variables), which
`haul loadtest` sets for the run; a distributed worker takes it from the master at each run's
start (distributed.py). parcel_ingest also needs the workers' app database and blob store
(HAUL_DATABASE_URL, HAUL_BLOB_DIR), set for a local --target as for `haul ingest parcel`.

Each user class names the requests it reports in `request_names`; scenarios.py refers to the
classes and requests by those names (see its docstring for how they are kept in step).
"""

from __future__ import annotations

import itertools
import random
from typing import Any, ClassVar

from locust import events, task
from locust.env import Environment
from locust.runners import LocalRunner

from app.domains.loadgen.models import NoopInput, TimerInput
from app.domains.loadgen.workflows import NoopActivityWorkflow, TimerWorkflow
from app.domains.sample.workflows import LedgerEntityWorkflow
from app.loadtest import distributed
from app.loadtest.accounting import VIA_KEY, VIA_SIGNAL_WITH_START
from app.loadtest.parcel_load import ParcelLoad
from app.loadtest.process_files import process_tag
from app.loadtest.users import TemporalBridge, TemporalUser, run_settings
from app.platform.retry_on_signal import EntityEvent, EntityInput

_seq = itertools.count()


@events.test_start.add_listener
def _take_handoff(environment: Environment, **_: Any) -> None:
    """A distributed worker has just been given this run's target and settings by its
    master: use them, and connect, before it spawns a user, so the users it reports to the
    master run at once (a capacity step's clock starts with that report)."""
    if distributed.take_handoff(environment):
        TemporalBridge.get()


@events.init.add_listener
def _connect_before_the_clock(environment: Environment, **_: Any) -> None:
    """A single local process connects before Locust's run time starts: on a busy machine a
    short run was spent connecting and reported no operation at all. (A distributed worker
    learns its target only at the run's start: it connects when it takes the handoff.)"""
    if isinstance(environment.runner, LocalRunner):
        TemporalBridge.get()


def _ident(kind: str) -> str:
    """A task identifier unique across users, processes and machines of one run."""
    return f"{run_settings().run_tag}-{kind}-{process_tag()}-{next(_seq)}"


class ScenarioUser(TemporalUser):
    """Waits the run's `wait` between operations (0: a closed loop, as omes)."""

    abstract = True

    def wait_time(self) -> float:
        return run_settings().wait


class StartAndCompleteUser(ScenarioUser):
    """One workflow with one no-op activity, started and awaited: 2 actions per operation."""

    weight = 3
    request_names = ("start_and_complete",)

    @task
    def start_and_complete(self) -> None:
        async def op() -> Any:
            handle = await self.haul.start(
                NoopActivityWorkflow.run, NoopInput(tag=run_settings().run_tag), _ident("noop")
            )
            return await handle.result()

        self.run_op("start_and_complete", op)


class SignalFanInUser(ScenarioUser):
    """Bursts of signal-with-start on a fixed set of retry_on_signal entities."""

    weight = 1
    request_names: ClassVar[tuple[str, ...]] = ("signal_with_start",)

    def entity_key(self, k: int) -> str:
        return f"{run_settings().run_tag}-entity-{k}"

    def sws(self, entity: str) -> Any:
        event = EntityEvent(event_id=_ident("event"), payload={VIA_KEY: VIA_SIGNAL_WITH_START})

        async def op() -> Any:
            return await self.haul.signal_with_start(
                LedgerEntityWorkflow.run,
                EntityInput(entity_key=entity, state={"work_seconds": 0.0}),
                entity,
                LedgerEntityWorkflow.on_event,
                event,
            )

        return op

    @task(5)
    def burst(self) -> None:
        settings = run_settings()
        entity = self.entity_key(random.randrange(settings.entities))
        self.run_ops("signal_with_start", [self.sws(entity) for _ in range(settings.burst)])


class MixedEntityUser(SignalFanInUser):
    """signal_fan_in plus queries on the entities (queries are billed, not in history)."""

    request_names = ("signal_with_start", "query_pending")

    @task(1)
    def query_pending(self) -> None:
        entity = self.entity_key(random.randrange(run_settings().entities))
        # Make sure the entity exists, then ask how many events it holds.
        self.run_ops("signal_with_start", [self.sws(entity)])
        self.run_op(
            "query_pending",
            lambda: self.haul.query(
                LedgerEntityWorkflow.run, entity, LedgerEntityWorkflow.pending_count
            ),
        )


class TimerUser(ScenarioUser):
    """A workflow that waits on a 1-second timer, started and awaited (the concurrency check)."""

    weight = 1
    request_names = ("timer_1s",)

    @task
    def timer_1s(self) -> None:
        async def op() -> Any:
            handle = await self.haul.start(
                TimerWorkflow.run, TimerInput(seconds=1.0), _ident("timer")
            )
            return await handle.result()

        self.run_op("timer_1s", op)


class ParcelIngestUser(ScenarioUser):
    """One small generated EDI 210 file through the whole parcel pipeline, awaited."""

    weight = 1
    request_names = ("parcel_ingest",)
    _load: ParcelLoad | None = None

    def on_start(self) -> None:
        super().on_start()
        if ParcelIngestUser._load is None:
            ParcelIngestUser._load = ParcelLoad.from_settings(run_settings())

    @task
    def parcel_ingest(self) -> None:
        load = ParcelIngestUser._load
        assert load is not None
        ident = _ident("parcel")
        self.run_op("parcel_ingest", lambda: load.ingest(self.haul, ident))


def declared_users() -> dict[str, tuple[str, ...]]:
    """Every concrete user class here, by name, with the requests it reports (scenarios.py's
    names are checked against this)."""
    return {
        name: cls.request_names
        for name, cls in globals().items()
        if isinstance(cls, type) and issubclass(cls, TemporalUser) and not cls.abstract
    }
