"""haul's Locust scenarios: weighted TemporalUser classes (see app/loadtest/scenarios.py).

Run through `haul loadtest run --scenario S ...`, which picks the classes, sets the target
(TEMPORAL_* / envconfig) and the run tag, and accounts for the actions afterwards. Workers run
in their own processes (`haul worker`), never here.

Settings (environment, set by `haul loadtest`; a distributed worker gets them from the master
at each run's start, see distributed.py):
  HAUL_LT_RUN_TAG   prefix of every task identifier, so the run's workflows can be found
  HAUL_LT_ENTITIES  signal_fan_in: number of entities the bursts land on (default 10)
  HAUL_LT_BURST     signal_fan_in: signal-with-starts per burst (default 5)
  HAUL_LT_WAIT      seconds a user waits between operations (default 0: closed loop, as omes)
  HAUL_LT_PARCEL_INVOICES, HAUL_LT_PARCEL_GROUPS
                    parcel_ingest: invoices per file and charge groups per invoice (3, 2)
  HAUL_DATABASE_URL, HAUL_BLOB_DIR
                    parcel_ingest: the workers' app database and blob store (set for a local
                    --target, as for `haul ingest parcel`)
"""

from __future__ import annotations

import itertools
import os
import random
import uuid
from dataclasses import dataclass
from typing import Any

from locust import events, task
from locust.env import Environment

from app.domains.loadgen.models import NoopInput, TimerInput
from app.domains.loadgen.workflows import NoopActivityWorkflow, TimerWorkflow
from app.domains.sample.workflows import LedgerEntityWorkflow
from app.loadtest import distributed
from app.loadtest.accounting import VIA_KEY, VIA_SIGNAL_WITH_START
from app.loadtest.parcel_load import ParcelLoad
from app.loadtest.process_files import process_tag
from app.loadtest.users import TemporalUser
from app.platform.retry_on_signal import EntityEvent, EntityInput


@dataclass(frozen=True)
class Settings:
    run_tag: str
    entities: int
    burst: int
    wait: float

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            run_tag=os.environ.get("HAUL_LT_RUN_TAG") or f"lt-{uuid.uuid4().hex[:8]}",
            entities=int(os.environ.get("HAUL_LT_ENTITIES", "10")),
            burst=int(os.environ.get("HAUL_LT_BURST", "5")),
            wait=float(os.environ.get("HAUL_LT_WAIT", "0")),
        )


SETTINGS = Settings.from_env()
_seq = itertools.count()


@events.test_start.add_listener
def _load_settings(environment: Environment, **_: Any) -> None:
    """Read the settings again at each run's start: a distributed worker has just been given
    this run's settings by the master."""
    global SETTINGS
    distributed.apply_forwarded(environment)
    SETTINGS = Settings.from_env()


def _ident(kind: str) -> str:
    """A task identifier unique across users, processes and machines of one run."""
    return f"{SETTINGS.run_tag}-{kind}-{process_tag()}-{next(_seq)}"


class ScenarioUser(TemporalUser):
    """Waits SETTINGS.wait between operations (0: a closed loop, as omes)."""

    abstract = True

    def wait_time(self) -> float:
        return SETTINGS.wait


class StartAndCompleteUser(ScenarioUser):
    """One workflow with one no-op activity, started and awaited: 2 actions per operation."""

    weight = 3

    @task
    def start_and_complete(self) -> None:
        async def op() -> Any:
            handle = await self.haul.start(
                NoopActivityWorkflow.run, NoopInput(tag=SETTINGS.run_tag), _ident("noop")
            )
            return await handle.result()

        self.run_op("start_and_complete", op)


class SignalFanInUser(ScenarioUser):
    """Bursts of signal-with-start on a fixed set of retry_on_signal entities."""

    weight = 1

    def entity_key(self, k: int) -> str:
        return f"{SETTINGS.run_tag}-entity-{k}"

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
        entity = self.entity_key(random.randrange(SETTINGS.entities))
        self.run_ops("signal_with_start", [self.sws(entity) for _ in range(SETTINGS.burst)])


class MixedEntityUser(SignalFanInUser):
    """signal_fan_in plus queries on the entities (queries are billed, not in history)."""

    @task(1)
    def query_pending(self) -> None:
        entity = self.entity_key(random.randrange(SETTINGS.entities))
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
    _load: ParcelLoad | None = None

    def on_start(self) -> None:
        super().on_start()
        if ParcelIngestUser._load is None:
            ParcelIngestUser._load = ParcelLoad.from_env()

    @task
    def parcel_ingest(self) -> None:
        load = ParcelIngestUser._load
        assert load is not None
        ident = _ident("parcel")
        self.run_op("parcel_ingest", lambda: load.ingest(self.haul, ident))
