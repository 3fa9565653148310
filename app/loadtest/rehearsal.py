"""`haul migrate rehearse`: walk a whole migration between two local clusters under a steady
mixed load, and prove from the servers' own records that nothing was lost.

The load goes through one migration-following router (as every haul process's does): task
starts (`GreetingWorkflow`, one ID each), signal-with-start fan-in with event IDs on a few
hundred `LedgerEntityWorkflow` entities (a few kept busy, so they stay open and must hand off),
parcel files through the parcel starter, and a schedule on the old cluster. A real
`haul worker` process (HAUL_MIGRATION) serves both clusters; it is SIGKILLed during `draining`
and a new one started. The walk calls the steps `haul migrate` runs (`migration_walk`), and
asks every opted-in run on the old cluster to hand off while draining, as `haul migrate
handoff` does. Both clusters are sampled for open runs at every step; the ledger
(`rehearsal_ledger`) is checked once every run has closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
import signal
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
)
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from app.core.blobstore import LocalBlobStore
from app.core.database import Database
from app.core.migrate import migrate
from app.domains.parcel.starter import submit
from app.domains.rate_audit.activities import seed_contracts
from app.domains.rate_audit.rates import sample_contracts
from app.domains.sample import DOMAIN as SAMPLE
from app.domains.sample.models import GreetingInput, LedgerBatch
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.formats.generator import Edi210Spec, write_edi210
from app.loadtest.rehearsal_ledger import Kind, Ledger, Problem, Run, Sample, Violation
from app.platform import handoff_control, migration_checks
from app.platform import migration_walk as walk
from app.platform.client import HaulClient, connect
from app.platform.discovery import discover
from app.platform.handoff_models import HANDED_OFF_MEMO, HandoffRequest
from app.platform.handoff_store import HandoffStore
from app.platform.history import scheduled_activity_inputs
from app.platform.migration_control import MigrationControl
from app.platform.migration_state import MigrationStore
from app.platform.phases import MigrationState, Phase, Step
from app.platform.retry_on_signal import EntityEvent, EntityInput
from app.platform.router import RouterStats
from app.stack import cluster, targets
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import start_worker, stop_worker

ABORT_STAGES = ("dual", "routing:guard", "routing:claim", "routing:lookup", "draining")
# `--abort-at routing` aborts once routing is complete (routing:lookup).
ABORT_ALIASES = {"routing": "routing:lookup"}
# Seconds between background samples of open IDs (each lists every open run on both
# clusters, heavy on a busy server); every step and phase also takes one.
SAMPLE_EVERY = 2.0
# Seconds a long-running entity's batch takes: longer than a loaded machine's call latency.
BUSY_WORK = 3.0
SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
WORKER_ROLE = "rehearsal-worker"
ACTOR = "haul migrate rehearse"
OPEN = "ExecutionStatus = 'Running'"


@dataclass(frozen=True)
class RehearsalConfig:
    """What to rehearse and how hard; the defaults are a small run."""

    source: str = "postgres"
    target: str = "cassandra"
    shards_to: int | None = None
    abort_at: str | None = None
    old_name: str = "rehearse-old"
    new_name: str = "rehearse-new"
    seconds: float = 5.0  # load time in each phase window
    rate: float = 20.0  # starts plus signal-with-starts offered per second
    entities: int = 200
    busy_entities: int = 4  # entities sent a share of the events, with slow batches
    parcel_every: float = 5.0  # seconds between parcel files (0: none)
    schedule_every: float = 2.0
    concurrency: int = 32  # calls in flight at most
    timeout: float = 180.0  # for each wait (a step in effect, the drain, every run closing)
    keep: bool = False

    @property
    def old(self) -> str:
        return self.old_name

    @property
    def new(self) -> str:
        return self.new_name


@dataclass
class Window:
    """Calls made under one stage of the sender's router."""

    label: str
    began: float
    ended: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"start": [], "sws": []})
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def seconds(self) -> float:
        return max((self.ended or time.monotonic()) - self.began, 1e-9)


@dataclass
class Outcome:
    """What the rehearsal found; `violations` empty means nothing was lost."""

    ledger: Ledger
    windows: list[Window]
    stats: RouterStats
    violations: list[Violation]
    drain_seconds: float | None = None
    handed_off: int = 0
    worker_killed: bool = False
    samples_missed: int = 0
    final: MigrationState | None = None


def _p95(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _status(s: WorkflowExecutionStatus | None) -> str:
    return s.name if s is not None else "UNKNOWN"


class Rehearsal:
    """One rehearsal over two registered clusters (see the module docstring)."""

    def __init__(self, cfg: RehearsalConfig, recs: dict[str, ClusterRecord], console: Console):
        self.cfg = cfg
        self.recs = recs
        self.console = console
        self.ledger = Ledger(schedule_every=timedelta(seconds=cfg.schedule_every))
        self.windows: list[Window] = []
        self.tag = uuid.uuid4().hex[:6]
        self.stop = asyncio.Event()
        self.gate = asyncio.Semaphore(cfg.concurrency)
        self.inflight: set[asyncio.Task[None]] = set()
        self.clients: dict[str, Client] = {}
        self.schedule_id = f"rh-{self.tag}-tick"
        self.samples_missed: Counter[str] = Counter()
        self.retries: Counter[str] = Counter()

    # -- plumbing ---------------------------------------------------------------------------

    def say(self, line: str) -> None:
        self.console.print(line)

    def label(self, state: MigrationState) -> str:
        if state.phase is Phase.SINGLE:
            return "single (after)" if state.old != self.cfg.old else "single (before)"
        return state.stage

    @property
    def window(self) -> Window:
        return self.windows[-1]

    async def follow_stage(self, haul: HaulClient) -> None:
        """Open a new window whenever the sender's router sees a new stage."""
        current = ""
        while not self.stop.is_set():
            label = self.label(haul.router.state)
            if label != current:
                if self.windows:
                    self.window.ended = time.monotonic()
                self.windows.append(Window(label, time.monotonic()))
                current = label
            await asyncio.sleep(0.05)
        self.window.ended = time.monotonic()

    async def timed(self, kind: str, key: str, call: Callable[[], Awaitable[Any]]) -> None:
        window = self.window
        began = time.monotonic()
        try:
            await call()
        except Exception as err:  # reported as a violation of its own; the ledger knows
            window.errors[f"{kind}: {type(err).__name__}"] += 1
            self.ledger.failed.add(key)
            return
        finally:
            self.gate.release()
        window.latencies[kind].append(time.monotonic() - began)

    async def offer(self, kind: str, key: str, call: Callable[[], Awaitable[Any]]) -> None:
        """Run `call` once a slot is free; `key` (its ID or event ID) is marked failed if it
        raises."""
        await self.gate.acquire()
        task = asyncio.create_task(self.timed(kind, key, call))
        self.inflight.add(task)
        task.add_done_callback(self.inflight.discard)

    # -- the load ---------------------------------------------------------------------------

    async def load(self, haul: HaulClient) -> None:
        """Starts and signal-with-starts, alternating, at `rate` a second until stopped."""
        rng = random.Random(self.tag)
        keys = [f"rh-{self.tag}-e{i}" for i in range(self.cfg.entities)]
        interval = 1.0 / self.cfg.rate if self.cfg.rate > 0 else 0.0
        n = 0
        next_at = time.monotonic()
        while not self.stop.is_set():
            n += 1
            if n % 2:
                name = f"rh-{self.tag}-g{n}"
                wf_id = haul.id_for(GreetingWorkflow.run, name)
                self.ledger.start(wf_id, Kind.TASK)
                await self.offer(
                    "start",
                    wf_id,
                    lambda name=name: haul.start(  # type: ignore[misc]
                        GreetingWorkflow.run, GreetingInput(name=name), name
                    ),
                )
            else:
                await self.send(haul, rng.choice(keys), f"{self.tag}-{n}", 0.0)
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def busy(self, haul: HaulClient, key: str) -> None:
        """One long-running entity: an event every half second, one after the other, and
        batches of BUSY_WORK seconds, so it never goes idle: it cannot drain and must hand
        off."""
        n = 0
        while not self.stop.is_set():
            n += 1
            await self.send(haul, key, f"{self.tag}-{key}-{n}", BUSY_WORK, wait=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), 0.5)

    async def send(
        self, haul: HaulClient, key: str, event_id: str, work: float, *, wait: bool = False
    ) -> None:
        """Signal-with-start one event; `wait` until the call returns (a busy entity's lane)."""
        self.ledger.send(haul.id_for(LedgerEntityWorkflow.run, key), event_id)

        def call() -> Awaitable[Any]:
            return haul.signal_with_start(
                LedgerEntityWorkflow.run,
                EntityInput(entity_key=key, state={"work_seconds": work}),
                key,
                LedgerEntityWorkflow.on_event,
                EntityEvent(event_id),
            )

        if wait:
            await self.gate.acquire()
            await self.timed("sws", event_id, call)
            return
        await self.offer("sws", event_id, call)

    async def parcels(self, haul: HaulClient, folder: Path) -> None:
        """One small carrier file every `parcel_every` seconds, through the parcel starter."""
        if self.cfg.parcel_every <= 0:
            return
        old = self.recs[self.cfg.old]
        database = Database(old.dsn())
        blobs = LocalBlobStore(old.blob_dir)
        seed = int(self.tag, 16)
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                path = folder / f"rh-{self.tag}-{n}.edi"
                write_edi210(path, Edi210Spec(invoices=3, seed=seed * 1000 + n))
                window = self.window
                began = time.monotonic()
                try:
                    sub = await submit(haul, database, blobs, path)
                    self.ledger.start(sub.workflow_id, Kind.TASK)
                    window.latencies["start"].append(time.monotonic() - began)
                except Exception as err:
                    window.errors[f"parcel: {type(err).__name__}"] += 1
                    self.ledger.failed.add(str(path))
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.cfg.parcel_every)
        finally:
            database.close()

    async def create_schedule(self) -> None:
        client = self.clients[self.cfg.old]
        await client.create_schedule(
            self.schedule_id,
            Schedule(
                action=ScheduleActionStartWorkflow(
                    GreetingWorkflow.run,
                    GreetingInput(name=self.schedule_id),
                    id=f"{self.schedule_id}-run",
                    task_queue=SAMPLE.task_queue,
                ),
                spec=ScheduleSpec(
                    intervals=[
                        ScheduleIntervalSpec(every=timedelta(seconds=self.cfg.schedule_every))
                    ]
                ),
                # Every period starts a run however busy the machine is: the ledger shows the
                # schedule's periods, not the load.
                policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL),
            ),
        )

    async def delete_schedule(self) -> None:
        for c in self.clients.values():
            try:
                await c.get_schedule_handle(self.schedule_id).delete()
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise

    # -- sampling ---------------------------------------------------------------------------

    async def sample(self, stage: str) -> None:
        """IDs open on both clusters at one moment. Visibility trails, so an ID listed open on
        both is confirmed by describing it on each: the run described second counts as open
        at the first description only if it had started before that description began."""
        names = [self.cfg.old, self.cfg.new]
        try:
            listed = {
                n: {wf.id async for wf in self.clients[n].list_workflows(OPEN)} for n in names
            }
            await self._confirm(stage, names, listed)
        except RPCError as err:
            # A loaded server may time a listing out: this sample is lost, not the rehearsal.
            self.samples_missed[str(err)] += 1

    async def _confirm(self, stage: str, names: list[str], listed: dict[str, set[str]]) -> None:
        open_ = {n: set(ids) for n, ids in listed.items()}
        for wf_id in listed[names[0]] & listed[names[1]]:
            first, second = random.sample(names, 2)
            asked = datetime.now().astimezone()
            d1 = await self._describe(first, wf_id)
            d2 = await self._describe(second, wf_id)
            both = (
                d1 is not None
                and d2 is not None
                and d1.status == d2.status == WorkflowExecutionStatus.RUNNING
                and d2.start_time is not None
                and d2.start_time <= asked
            )
            if not both:
                open_[second].discard(wf_id)
        self.ledger.samples.append(Sample(stage, {n: frozenset(v) for n, v in open_.items()}))

    async def _describe(self, cluster_name: str, wf_id: str) -> Any:
        try:
            return await self.clients[cluster_name].get_workflow_handle(wf_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def sampler(self, ctl: MigrationControl) -> None:
        while not self.stop.is_set():
            state = await ctl.state()
            await self.sample(state.stage)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stop.wait(), SAMPLE_EVERY)

    # -- the walk ---------------------------------------------------------------------------

    async def phase(self, ctl: MigrationControl, seconds: float) -> bool:
        """Let the load run under the current stage; True when this is where to abort."""
        state = await ctl.state()
        await self.sample(state.stage)
        await asyncio.sleep(seconds)
        return self.cfg.abort_at == state.stage

    async def run_walk(self, ctl: MigrationControl, old_rec: ClusterRecord) -> Outcome:
        cfg = self.cfg
        say = self.say
        outcome = Outcome(self.ledger, self.windows, RouterStats(), [])
        await self.phase(ctl, cfg.seconds)
        await walk.start(ctl, cfg.new, say=say, actor=ACTOR, timeout=cfg.timeout)
        await self.until(
            lambda: self._pollers_ready(), f"the worker polling every task queue on {cfg.new!r}"
        )
        if await self.phase(ctl, cfg.seconds):
            return await self.abort(ctl, outcome, old_rec)

        until = {"routing:guard": Step.GUARD, "routing:claim": Step.CLAIM}.get(
            cfg.abort_at or "", Step.LOOKUP
        )
        try:
            state = await walk.route(
                ctl, lead=5.0, say=say, until=until, actor=ACTOR, timeout=cfg.timeout
            )
        except RPCError as err:
            # A loaded server timed out the schedule move that ends `route`; routing is in
            # effect and `route` cannot run again, so finish the move as `drain` would.
            state = await ctl.state()
            if state.step is not Step.LOOKUP or state.new is None:
                raise
            self.say(f"[yellow]schedule move failed ({err}); moving again")
            new = state.new
            await self.again(
                "moving schedules",
                lambda: walk.move_schedules(
                    ctl, state.old, new, lead=5.0, timeout=cfg.timeout, say=say
                ),
            )
        await self.sample(state.stage)
        if await self.phase(ctl, cfg.seconds):
            return await self.abort(ctl, outcome, old_rec)
        await self.again(
            "drain",
            lambda: walk.begin_drain(ctl, lead=5.0, say=say, actor=ACTOR, timeout=cfg.timeout),
        )
        return await self.drain(ctl, outcome, old_rec, abort_here=cfg.abort_at == "draining")

    async def again(self, what: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run an idempotent walk step again when a loaded server times out an RPC of it, as
        an operator re-runs the command (at most 5 tries); the retries are reported."""
        for attempt in range(1, 6):
            try:
                return await call()
            except RPCError as err:
                if attempt == 5:
                    raise
                self.retries[what] += 1
                self.say(f"[yellow]{what}: {err}; trying again[/yellow]")
                await asyncio.sleep(2.0)

    async def _pollers_ready(self) -> bool:
        return not await migration_checks.missing_pollers(self.clients[self.cfg.new], discover())

    async def until(
        self, check: Callable[[], Awaitable[bool]], what: str, *, fail: bool = True
    ) -> bool:
        """Wait for `check`; past the timeout raise, or (not `fail`) say so and go on."""
        deadline = time.monotonic() + self.cfg.timeout
        while not await self._checked(check):
            if time.monotonic() > deadline:
                if fail:
                    raise TimeoutError(
                        f"timed out after {self.cfg.timeout:.0f}s waiting for {what}"
                    )
                self.say(f"[yellow]gave up after {self.cfg.timeout:.0f}s waiting for {what}")
                return False
            await asyncio.sleep(0.5)
        return True

    @staticmethod
    async def _checked(check: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await check()
        except RPCError:
            return False  # a loaded server timed out: ask again

    async def kill_worker(self, rec: ClusterRecord) -> None:
        """SIGKILL the worker mid-drain and start a new one, as a crashed pod is replaced."""
        pid = rec.pids.get(WORKER_ROLE)
        await asyncio.to_thread(stop_worker, rec, WORKER_ROLE, sig=signal.SIGKILL)
        self.say(f"worker pid {pid} killed (SIGKILL) during draining")
        pid = await asyncio.to_thread(start_worker, rec, role=WORKER_ROLE, env=_MIGRATING)
        self.say(f"worker pid {pid} started in its place")

    async def hand_off(self, ctl: MigrationControl, state: MigrationState) -> int:
        """What `haul migrate handoff` does: ask every opted-in run open on the old cluster."""
        assert state.new is not None
        opted = handoff_control.opted_in_types(ctl.discovered)
        old = await ctl.client(state.old)
        runs = await handoff_control.open_runs(old, opted)
        request = HandoffRequest(state.old, state.new, ACTOR)
        gate = asyncio.Semaphore(8)
        asked = 0

        async def ask(wf_id: str) -> None:
            nonlocal asked
            async with gate:
                try:
                    await handoff_control.request_handoff(old, wf_id, request, opted_in=opted)
                    asked += 1
                except handoff_control.HandoffRefusedError:
                    pass  # it closed meanwhile: nothing to hand off
                except RPCError as err:
                    # A loaded server timed the update out: that run drains instead.
                    self.say(f"[yellow]handoff of {wf_id} not acknowledged: {err}[/yellow]")

        await asyncio.gather(*(ask(i) for i, _ in runs))
        self.say(f"asked {asked} of {len(runs)} open opted-in run(s) to hand off")
        return asked

    async def drain(
        self,
        ctl: MigrationControl,
        outcome: Outcome,
        old_rec: ClusterRecord,
        *,
        abort_here: bool = False,
    ) -> Outcome:
        cfg = self.cfg
        state = await ctl.state()
        began = time.monotonic()
        await self.sample(state.stage)
        if not outcome.worker_killed:
            await self.kill_worker(old_rec)
            outcome.worker_killed = True
        await self.sample(state.stage)
        if abort_here:
            await asyncio.sleep(cfg.seconds)
            return await self.abort(ctl, outcome, old_rec)
        await asyncio.sleep(cfg.seconds / 2)
        await self.hand_off(ctl, state)
        await walk.mark_drained(
            ctl,
            wait=True,
            poll=1.0,
            say=self.say,
            deadline=cfg.timeout,
            actor=ACTOR,
            timeout=cfg.timeout,
        )
        outcome.drain_seconds = time.monotonic() - began
        handoffs = await asyncio.to_thread(HandoffStore(ctl.store.db).counts, state.old)
        outcome.handed_off += sum(handoffs.values())
        await self.sample("drained")
        outcome.final = await walk.finish(ctl, say=self.say, actor=ACTOR, timeout=cfg.timeout)
        await self.phase(ctl, cfg.seconds)
        return outcome

    async def abort(
        self, ctl: MigrationControl, outcome: Outcome, old_rec: ClusterRecord
    ) -> Outcome:
        """Rehearse `haul migrate abort` here; a migration back is then drained and finished."""
        cfg = self.cfg
        state = await walk.abort(ctl, actor=ACTOR, timeout=cfg.timeout, lead=5.0, say=self.say)
        await self.sample(state.stage)
        if state.phase is Phase.SINGLE:
            outcome.final = state
            await self.phase(ctl, cfg.seconds)
            return outcome
        await asyncio.sleep(cfg.seconds)
        await walk.begin_drain(ctl, actor=ACTOR, timeout=cfg.timeout, lead=5.0, say=self.say)
        return await self.drain(ctl, outcome, old_rec)

    # -- the end ----------------------------------------------------------------------------

    async def settle(self) -> None:
        """Stop the load and the schedule, then wait until nothing is open on either cluster."""
        await self.delete_schedule()

        said = [time.monotonic()]

        async def quiet() -> bool:
            left = {n: await migration_checks.open_workflows(c) for n, c in self.clients.items()}
            if any(left.values()) and time.monotonic() - said[0] > 10:
                said[0] = time.monotonic()
                self.say("still open: " + ", ".join(f"{v} on {n}" for n, v in left.items()))
            return not any(left.values())

        await self.until(quiet, "every run on both clusters to close", fail=False)

    async def read_back(self) -> None:
        """Runs, processed events and scheduled times, from visibility and histories."""
        wanted = set(self.ledger.started)
        runs: dict[str, list[Run]] = {}
        times: list[tuple[datetime, str]] = []
        for name, c in self.clients.items():
            async for wf in c.list_workflows():
                if wf.id in wanted:
                    runs.setdefault(wf.id, []).append(
                        Run(
                            name,
                            wf.run_id,
                            _status(wf.status),
                            HANDED_OFF_MEMO in wf.raw_info.memo.fields,
                        )
                    )
            async for wf in c.list_workflows(f"TemporalScheduledById = '{self.schedule_id}'"):
                at = wf.typed_search_attributes.get(SCHEDULED_AT)
                if at is not None:
                    times.append((at, name))
        self.ledger.runs = runs
        self.ledger.schedule_times = times
        gate = asyncio.Semaphore(8)

        async def processed(wf_id: str) -> tuple[str, Counter[str]]:
            book: Counter[str] = Counter()
            for run in runs.get(wf_id, []):
                async with gate:
                    for batch in await scheduled_activity_inputs(
                        self.clients[run.cluster],
                        wf_id,
                        run.run_id,
                        "process_ledger_batch",
                        LedgerBatch,
                    ):
                        book.update(batch.event_ids)
            return wf_id, book

        self.ledger.processed = dict(
            await asyncio.gather(*(processed(i) for i in self.ledger.ids(Kind.ENTITY)))
        )

    async def visibility_caught_up(self) -> bool:
        """Every ID the ledger started is listed, and none as running (visibility trails)."""
        await self.read_back()
        listed = set(self.ledger.runs)
        running = any(r.status == "RUNNING" for rs in self.ledger.runs.values() for r in rs)
        return listed >= set(self.ledger.started) and not running


_MIGRATING = {"HAUL_MIGRATION": "true"}


async def _run(cfg: RehearsalConfig, recs: dict[str, ClusterRecord], console: Console) -> Outcome:
    old_rec = recs[cfg.old]
    reg = Registry()
    profiles = str(reg.profile_file)
    dsn = old_rec.dsn()
    await asyncio.to_thread(migrate, dsn)
    db = Database(dsn)
    with db.connect() as conn:
        # The rehearsal's own clusters: a kept pair from an earlier rehearsal starts afresh.
        conn.execute(
            "truncate cluster_migration, cluster_migration_history, cluster_routers, "
            "cluster_claims, workflow_handoffs"
        )
        seed_contracts(conn, sample_contracts())

    async def reach(name: str) -> Client:
        return await connect(name, config_file=profiles, env_overrides=False)

    ctl = MigrationControl(MigrationStore(db), reach, discover(), cfg.old)
    rh = Rehearsal(cfg, recs, console)
    for name in (cfg.old, cfg.new):
        rh.clients[name] = await ctl.client(name)
    await asyncio.to_thread(start_worker, old_rec, role=WORKER_ROLE, env=_MIGRATING)
    haul = await HaulClient.connect(targets.for_cluster(old_rec, reg, migration=True))

    async def placed(op: str, wf_id: str, where: str) -> None:
        rh.ledger.place(wf_id, where)

    haul.router.decision_hook = placed
    background: list[asyncio.Task[None]] = []
    folder = Path(tempfile.mkdtemp(prefix="haul-rehearse-"))
    try:
        await rh.create_schedule()
        background.append(asyncio.create_task(rh.follow_stage(haul)))
        await asyncio.sleep(0.1)
        background.append(asyncio.create_task(rh.load(haul)))
        background += [
            asyncio.create_task(rh.busy(haul, f"rh-{rh.tag}-busy{i}"))
            for i in range(cfg.busy_entities)
        ]
        background.append(asyncio.create_task(rh.parcels(haul, folder)))
        background.append(asyncio.create_task(rh.sampler(ctl)))
        outcome = await rh.run_walk(ctl, old_rec)
        rh.stop.set()
        await asyncio.gather(*background)
        if rh.inflight:
            await asyncio.gather(*list(rh.inflight))
        outcome.stats = haul.router.stats
        outcome.samples_missed = sum(rh.samples_missed.values())
        await rh.settle()
        # What is still missing or open then is the ledger's to report.
        await rh.until(rh.visibility_caught_up, "visibility to list every run closed", fail=False)
        outcome.violations = rh.ledger.check()
        for w in rh.windows:
            for what, n in w.errors.items():
                outcome.violations.append(
                    Violation(Problem.CALL_FAILED, f"{n} {what} during {w.label}")
                )
        return outcome
    finally:
        rh.stop.set()
        for t in background:
            t.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await haul.close()
        await asyncio.to_thread(stop_worker, old_rec, WORKER_ROLE)
        db.close()
        for p in folder.glob("*"):
            p.unlink()
        folder.rmdir()


def report(outcome: Outcome, cfg: RehearsalConfig, console: Console) -> None:
    table = Table(
        "stage",
        "seconds",
        "starts",
        "starts/s",
        "start p95 ms",
        "sws",
        "sws/s",
        "sws p95 ms",
        "extra RPCs/start",
        "extra RPCs/sws",
        "db queries/call",
        title=f"rehearsal {cfg.source} -> {cfg.target} (offered {cfg.rate:g} calls/s)",
    )
    stats = outcome.stats
    for w in outcome.windows:
        stage = w.label.split(" (")[0]
        rpc_start, q_start = stats.per_call(stage, "start")
        rpc_sws, q_sws = stats.per_call(stage, "signal_with_start")
        starts, sws = w.latencies["start"], w.latencies["sws"]
        table.add_row(
            w.label,
            f"{w.seconds:.1f}",
            str(len(starts)),
            f"{len(starts) / w.seconds:.1f}",
            f"{_p95(starts) * 1000:.0f}",
            str(len(sws)),
            f"{len(sws) / w.seconds:.1f}",
            f"{_p95(sws) * 1000:.0f}",
            f"{rpc_start:.2f}",
            f"{rpc_sws:.2f}",
            f"{max(q_start, q_sws):.2f}",
        )
    console.print(table)
    ledger = outcome.ledger
    drain = f"{outcome.drain_seconds:.1f}s" if outcome.drain_seconds is not None else "-"
    console.print(
        f"drain: {drain} from draining to drained; handed off: {outcome.handed_off}; "
        f"worker killed during draining: {'yes' if outcome.worker_killed else 'no'}; "
        f"ended at: {outcome.final.stage if outcome.final else '-'} on "
        f"{outcome.final.old if outcome.final else '-'}"
    )
    placed = Counter(c for where in ledger.placed.values() for c in where)
    console.print(
        f"ledger: {len(ledger.ids(Kind.TASK))} tasks, {len(ledger.ids(Kind.ENTITY))} entities, "
        f"{ledger.events} events, {len(ledger.schedule_times)} schedule periods, "
        f"{len(ledger.samples)} samples ({outcome.samples_missed} missed); router placed "
        + ", ".join(f"{n} on {c}" for c, n in sorted(placed.items()))
    )
    if outcome.violations:
        console.print(f"[red]{len(outcome.violations)} violation(s)[/red]")
        for v in outcome.violations[:50]:
            console.print(f"  [red]{v}[/red]")
    else:
        console.print("[green]no violation[/green]: nothing lost, nothing run twice")


def rehearse(cfg: RehearsalConfig, console: Console | None = None) -> Outcome:
    """Bring both clusters up, rehearse, report; tear them down unless `keep`."""
    console = console or Console()
    if cfg.abort_at in ABORT_ALIASES:
        cfg = dataclasses.replace(cfg, abort_at=ABORT_ALIASES[cfg.abort_at])
    if cfg.abort_at is not None and cfg.abort_at not in ABORT_STAGES:
        raise ValueError(
            f"--abort-at {cfg.abort_at!r} is no stage to abort at; choose one of "
            f"{', '.join(ABORT_STAGES)} (routing means routing:lookup)"
        )
    if cfg.old == cfg.new:
        raise ValueError(f"--old and --new are both {cfg.old!r}: name two clusters")
    recs: dict[str, ClusterRecord] = {}
    try:
        for name, backend, shards in (
            (cfg.old, cfg.source, None),
            (cfg.new, cfg.target, cfg.shards_to),
        ):
            console.print(f"bringing up {name!r} ({backend})")
            recs[name] = cluster.up(name, backend, shards=shards, headless=True, timeout=300)
        outcome = asyncio.run(_run(cfg, recs, console))
        report(outcome, cfg, console)
        return outcome
    finally:
        if not cfg.keep:
            for name in recs:
                cluster.down(name, purge=True)
