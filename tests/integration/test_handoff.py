"""Handoff on two dev clusters and the real app database: an entity open on the old cluster
continues on the new one under the same ID, with its state and pending events, while
signal-with-starts keep arriving; the races are forced; a worker dies mid-handoff.

Every check reads what the servers recorded: the activity inputs in each run's history (the
ledger of processed event IDs), each run's status and result, and open runs sampled on both
clusters (the new cluster first: a run open there means the old one had closed before).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from typing import Any

import pytest
import pytest_asyncio
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError
from temporalio.worker import Worker

from app.core.settings import Settings
from app.domains.sample import DOMAIN
from app.domains.sample.activities import SampleActivities
from app.domains.sample.models import GreetingInput, LedgerBatch
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform import migration_checks
from app.platform.client import HaulClient, connect
from app.platform.discovery import discover
from app.platform.handoff import HandoffResume
from app.platform.handoff_activities import HandoffActivities
from app.platform.handoff_control import (
    HandoffRefusedError,
    opted_in_types,
    request_handoff,
)
from app.platform.handoff_models import (
    HANDED_OFF,
    RECORD_ACTIVITY,
    HandoffAck,
    HandoffRequest,
    HandoffSnapshot,
)
from app.platform.handoff_store import HandoffStatus, HandoffStore
from app.platform.history import run_ids, scheduled_activity_inputs
from app.platform.migration_state import MigrationStore
from app.platform.phases import Action, Facts, MigrationState
from app.platform.retry_on_signal import EntityEvent, EntityInput, EntityResult
from app.platform.router import ClusterRouter
from app.platform.worker import WorkerContext, build_workers
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import start_worker, stop_worker
from tests.integration.migration_clusters import clean_store, two_clusters

OLD, NEW = "ho-old", "ho-new"
SAMPLE = discover(["app.domains.sample"])


@pytest.fixture(scope="module")
def records() -> Iterator[dict[str, ClusterRecord]]:
    with two_clusters(OLD, NEW) as recs:
        yield recs


@pytest_asyncio.fixture(scope="module")
async def clients(records: dict[str, ClusterRecord]) -> dict[str, Client]:
    return {n: await connect(n, config_file=str(Registry().profile_file)) for n in records}


@pytest.fixture
def store(records: dict[str, ClusterRecord]) -> Iterator[MigrationStore]:
    with clean_store(records[OLD].dsn()) as fresh_store:
        with fresh_store.db.connect() as conn:
            conn.execute("truncate workflow_handoffs")
        yield fresh_store


@asynccontextmanager
async def router(clients: dict[str, Client], store: MigrationStore) -> AsyncIterator[ClusterRouter]:
    async with ClusterRouter(clients, store, cluster=OLD, refresh_seconds=0.1) as r:
        yield r


@asynccontextmanager
async def serving(
    clients: dict[str, Client],
    store: MigrationStore,
    on: list[str],
    record: Callable[[HandoffActivities], Any] | None = None,
    follow: bool = True,
) -> AsyncIterator[dict[str, list[Worker]]]:
    """Sample workers on the given clusters, whose activities route through a router that
    follows the state (as `haul worker` with HAUL_MIGRATION). `record` replaces the record
    activity (registered under its real name) to hold a handoff at a chosen point. Without
    `follow`, activities reach only the cluster their worker polls (no migration state)."""
    async with router(clients, store) as r:
        haul = HaulClient(r) if follow else None
        running: dict[str, list[Worker]] = {}
        tasks = []
        for name in on:
            if record is None:
                workers = build_workers(
                    clients[name], SAMPLE, Settings(), [DOMAIN.task_queue], haul=haul
                )
            elif haul is None:
                raise ValueError("a held record activity needs workers that follow the state")
            else:
                acts = SampleActivities(WorkerContext(Settings(), haul))
                handoff = HandoffActivities(haul)
                workers = [
                    Worker(
                        clients[name],
                        task_queue=DOMAIN.task_queue,
                        workflows=[LedgerEntityWorkflow, GreetingWorkflow, HandoffResume],
                        activities=[
                            acts.compose_greeting,
                            acts.process_ledger_batch,
                            record(handoff),
                            handoff.forward,
                            handoff.resume,
                        ],
                    )
                ]
            running[name] = workers
            tasks += [asyncio.create_task(w.run()) for w in workers]
        try:
            yield running
        finally:
            await asyncio.gather(
                *(w.shutdown() for ws in running.values() for w in ws), return_exceptions=True
            )
            await asyncio.gather(*tasks, return_exceptions=True)


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    for _ in range(int(timeout / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def step(store: MigrationStore, action: Action, **kw: Any) -> MigrationState:
    state = store.announce(action, actor="test", reason=f"test {action}", **kw)
    await wait_for(
        lambda: asyncio.to_thread(store.in_effect, state.version), f"{state.stage} in effect"
    )
    return state


async def to_draining(store: MigrationStore) -> None:
    await step(store, Action.START, old_cluster=OLD, new_cluster=NEW)
    for action in (Action.ROUTE, Action.ROUTE, Action.ROUTE, Action.DRAIN):
        await step(store, action)


def fresh() -> str:
    return uuid.uuid4().hex[:12]


async def send(r: ClusterRouter, key: str, event_id: str, work_seconds: float = 0.0) -> str:
    handle = await r.signal_with_start(
        LedgerEntityWorkflow.run,
        EntityInput(entity_key=key, state={"work_seconds": work_seconds}),
        key,
        LedgerEntityWorkflow.on_event,
        EntityEvent(event_id),
    )
    return handle.id


async def status(client: Client, wf_id: str, run_id: str | None = None) -> Any:
    """The status of the ID's run (latest by default), or None when it has none."""
    try:
        return (await client.get_workflow_handle(wf_id, run_id=run_id).describe()).status
    except RPCError:
        return None


async def processed(client: Client, wf_id: str) -> Counter[str]:
    """Event IDs in every process_ledger_batch input of every run of the ID on one cluster."""
    seen: Counter[str] = Counter()
    for run in await run_ids(client, wf_id):
        for batch in await scheduled_activity_inputs(
            client, wf_id, run, "process_ledger_batch", LedgerBatch
        ):
            seen.update(batch.event_ids)
    return seen


async def ledger(
    clients: dict[str, Client], wf_id: str, sent: list[str]
) -> dict[str, Counter[str]]:
    """Processed event IDs per cluster, once every run is closed and visible (the test then
    asserts the counts; visibility trails the runs by a moment)."""
    out: dict[str, Counter[str]] = {}

    async def settled() -> bool:
        for name, c in clients.items():
            if await status(c, wf_id) == WorkflowExecutionStatus.RUNNING:
                return False
            out[name] = await processed(c, wf_id)
        return set(sent) <= set(sum(out.values(), Counter()))

    await wait_for(settled, f"every event of {wf_id} processed", timeout=90)
    return out


class OpenSampler:
    """Samples open runs of one ID on both clusters until stopped: the new cluster first, so
    a sample that sees both open saw them open at the same moment."""

    def __init__(self, clients: dict[str, Client], wf_id: str) -> None:
        self.clients, self.wf_id = clients, wf_id
        self.samples = 0
        self.both_open = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            on_new = await status(self.clients[NEW], self.wf_id)
            on_old = await status(self.clients[OLD], self.wf_id)
            running = WorkflowExecutionStatus.RUNNING
            self.samples += 1
            self.both_open += on_new == running and on_old == running
            await asyncio.sleep(0.02)

    def __enter__(self) -> OpenSampler:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def result_of(client: Client, wf_id: str, run_id: str) -> EntityResult:
    res: EntityResult = await client.get_workflow_handle_for(
        LedgerEntityWorkflow.run, wf_id, run_id=run_id
    ).result()
    return res


async def ask(clients: dict[str, Client], wf_id: str) -> HandoffAck:
    return await request_handoff(
        clients[OLD], wf_id, HandoffRequest(OLD, NEW, "test"), opted_in=opted_in_types(SAMPLE)
    )


# -- an entity under load --------------------------------------------------------------------


async def test_an_entity_handed_off_under_signal_with_start_load_processes_every_event_once(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with serving(clients, store, [OLD, NEW]), router(clients, store) as sender:
        key = fresh()
        # Slow batches, so events pile up as pending while the run works; events keep coming
        # from before the migration starts, so the entity stays open on the old cluster.
        wf_id = await send(sender, key, "e-0000", work_seconds=0.4)
        sent = ["e-0000"]
        stop = asyncio.Event()

        async def load(lane: int) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                event_id = f"e-{lane}{i:03d}"
                await send(sender, key, event_id, work_seconds=0.4)
                sent.append(event_id)
                await asyncio.sleep(0.05 * lane)

        with OpenSampler(clients, wf_id) as sampler:
            lanes = asyncio.gather(*(load(lane) for lane in range(1, 5)))
            await to_draining(store)
            assert await status(clients[OLD], wf_id) == WorkflowExecutionStatus.RUNNING
            ack = await ask(clients, wf_id)
            await asyncio.sleep(2)
            stop.set()
            await lanes
            book = await ledger(clients, wf_id, sent)
        assert sampler.samples > 20 and sampler.both_open == 0

        # Every event ID sent was processed exactly once, on one of the clusters.
        assert book[OLD] + book[NEW] == Counter(dict.fromkeys(sent, 1))
        assert book[NEW], "the continuation processed nothing on the new cluster"
        old_run = await result_of(clients[OLD], wf_id, ack.run_id)
        assert old_run.reason == HANDED_OFF
        assert await status(clients[OLD], wf_id, ack.run_id) == WorkflowExecutionStatus.COMPLETED
        row = HandoffStore(store.db).get(wf_id)
        assert row is not None and row.status is HandoffStatus.RESUMED
        assert row.from_run_id == ack.run_id
        # The continuation took the old run's state along (its run count goes on).
        new_run = await result_of(clients[NEW], wf_id, row.resumed_run_id or "")
        assert new_run.runs > old_run.runs and new_run.processed > old_run.processed


# -- the races, forced -----------------------------------------------------------------------


async def test_a_signal_that_finds_the_old_run_handed_off_resumes_it_with_its_event(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """signal_with_start looked the ID up open on old, then the run completed as handed off
    before the signal reached it: the signal finds it closed, and the router starts the
    continuation from the snapshot with this event, before the resumer (whose workers are
    not running yet) does."""
    async with serving(clients, store, [OLD]), router(clients, store) as sender:
        key = fresh()
        wf_id = await send(sender, key, "e-0", work_seconds=2)
        await to_draining(store)
        await send(sender, key, "e-1")
        await ask(clients, wf_id)

        async def let_it_hand_off(op: str, target_id: str, cluster_name: str) -> None:
            if target_id == wf_id and cluster_name == OLD:
                await wait_for(
                    lambda: _closed(clients[OLD], wf_id), "the old run handed off", timeout=30
                )

        sender.decision_hook = let_it_hand_off
        await send(sender, key, "e-2")
        sender.decision_hook = None
        stage = "draining"
        assert sender.stats.extra_rpcs[(stage, "signal_with_start", "signal-old-closed")] == 1
        assert sender.stats.extra_rpcs[(stage, "signal_with_start", "handoff-resume")] == 1
        row = HandoffStore(store.db).get(wf_id)
        assert row is not None and row.status is HandoffStatus.RESUMED
        assert [e["event_id"] for e in row.snapshot["pending"]] == ["e-1"]
    # The resumer runs once the new cluster has workers: it finds the handoff resumed.
    async with serving(clients, store, [NEW]):
        book = await ledger(clients, wf_id, ["e-0", "e-1", "e-2"])
        resumer = await clients[NEW].get_workflow_handle(f"handoff-resume|{wf_id}").result()
    assert resumer == ""
    assert book == {OLD: Counter({"e-0": 1}), NEW: Counter({"e-1": 1, "e-2": 1})}
    assert len(await run_ids(clients[NEW], wf_id)) == 1


async def _closed(client: Client, wf_id: str) -> bool:
    return await status(client, wf_id) not in (WorkflowExecutionStatus.RUNNING, None)


async def test_an_event_reaching_the_old_run_after_its_snapshot_is_forwarded(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """The record activity is held after it wrote the snapshot; an event sent meanwhile is
    signalled to the still-open old run, which forwards it into the snapshot before it
    completes, so the continuation processes it, once."""
    recorded, release = asyncio.Event(), asyncio.Event()

    def held(handoff: HandoffActivities) -> Any:
        @activity.defn(name=RECORD_ACTIVITY)
        async def record(snap: HandoffSnapshot) -> bool:
            written = await handoff.record(snap)
            recorded.set()
            await release.wait()
            return written

        return record

    async with serving(clients, store, [OLD, NEW], record=held), router(clients, store) as r:
        key = fresh()
        wf_id = await send(r, key, "e-0", work_seconds=1)
        await to_draining(store)
        await send(r, key, "e-1")
        await ask(clients, wf_id)
        await asyncio.wait_for(recorded.wait(), 30)
        await send(r, key, "e-late")
        assert r.stats.extra_rpcs[("draining", "signal_with_start", "signal-old-closed")] == 0
        release.set()
        book = await ledger(clients, wf_id, ["e-0", "e-1", "e-late"])
    assert book == {OLD: Counter({"e-0": 1}), NEW: Counter({"e-1": 1, "e-late": 1})}
    row = HandoffStore(store.db).get(wf_id)
    assert row is not None and row.forwarded == 1 and row.status is HandoffStatus.RESUMED


# -- refusals --------------------------------------------------------------------------------


async def test_a_worker_that_does_not_follow_the_migration_keeps_the_run_and_its_events(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """Its record activity cannot write the snapshot: the run drops the request and its
    memo, and processes every event where it is."""
    async with serving(clients, store, [OLD], follow=False), router(clients, store) as r:
        key = fresh()
        wf_id = await send(r, key, "e-0", work_seconds=1)
        await to_draining(store)
        await send(r, key, "e-1")
        ack = await ask(clients, wf_id)
        result = await result_of(clients[OLD], wf_id, ack.run_id)
        assert result.reason == "" and result.processed == 2
        desc = await clients[OLD].get_workflow_handle(wf_id, run_id=ack.run_id).describe()
        assert "haul-handed-off-to" not in await desc.memo()
    assert HandoffStore(store.db).get(wf_id) is None
    assert await processed(clients[OLD], wf_id) == Counter({"e-0": 1, "e-1": 1})


async def test_a_workflow_that_did_not_opt_in_refuses_handoff(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with serving(clients, store, [OLD]), router(clients, store) as r:
        task = fresh()
        greeting = await r.start(
            GreetingWorkflow.run, GreetingInput(name="g", work_seconds=5), task
        )
        request = HandoffRequest(OLD, NEW, "test")
        # Asked directly, the run itself refuses: it has no handoff handler.
        with pytest.raises(HandoffRefusedError, match="GreetingWorkflow, which does not opt in"):
            await request_handoff(clients[OLD], greeting.id, request)
        # The type filter refuses without asking it.
        with pytest.raises(HandoffRefusedError, match="does not opt in to handoff: let it drain"):
            await request_handoff(
                clients[OLD], greeting.id, request, opted_in=opted_in_types(SAMPLE)
            )
        assert await status(clients[OLD], greeting.id) == WorkflowExecutionStatus.RUNNING
        with pytest.raises(HandoffRefusedError, match="nothing to hand off"):
            await request_handoff(clients[OLD], f"ledger-entity-workflow|{fresh()}", request)
        await r.cancel(GreetingWorkflow.run, task)


async def test_the_cli_refuses_before_draining_and_for_types_that_do_not_opt_in(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    code, out = await haul("migrate", "handoff", "--yes")
    assert code != 0 and "handoff needs the draining phase (now single)" in out, out
    async with serving(clients, store, [OLD]):
        await to_draining(store)
        code, out = await haul("migrate", "handoff", "--type", "GreetingWorkflow", "--yes")
    assert code != 0 and "GreetingWorkflow does not opt in to handoff" in out, out


async def test_drained_is_refused_while_a_handoff_is_not_yet_resumed(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """The old cluster may be empty while a continuation has not started: finishing then
    would leave its pending events in the database."""
    async with serving(clients, store, [OLD]), router(clients, store) as r:
        key = fresh()
        wf_id = await send(r, key, "e-0", work_seconds=5)  # still open once draining is in effect
        await to_draining(store)
        await send(r, key, "e-1")
        await ask(clients, wf_id)
        await wait_for(lambda: _closed(clients[OLD], wf_id), "the old run handed off")
        assert HandoffStore(store.db).unresumed(OLD) == 1
        await wait_for(lambda: migration_checks_drained(clients[OLD]), "nothing open on old")
        code, out = await haul("migrate", "drain", "--yes")
        assert code != 0 and "1 handed-off workflow(s) not yet resumed" in out, out
    async with serving(clients, store, [NEW]):
        await ledger(clients, wf_id, ["e-0", "e-1"])
        assert HandoffStore(store.db).unresumed(OLD) == 0
        await wait_for(lambda: migration_checks_drained(clients[OLD]), "old drained")
        await step(store, Action.MARK_DRAINED, facts=Facts(open_on_old=0))


async def test_a_run_handed_off_is_looked_up_every_time_never_cached(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """Draining serves the router's look-up cache, but a run closed as handed off is not a
    final answer: its continuation may still wait, so each signal-with-start describes it
    again (the first resumes it with its event, the next signals the continuation)."""
    async with serving(clients, store, [OLD]), router(clients, store) as r:
        key = fresh()
        wf_id = await send(r, key, "e-0", work_seconds=5)
        await to_draining(store)
        await send(r, key, "e-1")
        await ask(clients, wf_id)
        await wait_for(lambda: _closed(clients[OLD], wf_id), "the old run handed off")
        await send(r, key, "e-2")
        await send(r, key, "e-3")
        op = ("draining", "signal_with_start")
        assert r.stats.extra_rpcs[(*op, "describe-old")] == 3
        assert r.stats.extra_rpcs[(*op, "handoff-resume")] == 1
        assert r.stats.cache_hits[op] == 0
    async with serving(clients, store, [NEW]):
        book = await ledger(clients, wf_id, ["e-0", "e-1", "e-2", "e-3"])
    assert book[OLD] + book[NEW] == Counter(dict.fromkeys(["e-0", "e-1", "e-2", "e-3"], 1))
    assert set(book[NEW]) >= {"e-2", "e-3"}
    assert len(await run_ids(clients[NEW], wf_id)) == 1


async def migration_checks_drained(client: Client) -> bool:
    return await migration_checks.open_workflows(client) == 0


async def haul(*args: str) -> tuple[int, str]:
    """`haul ... --cluster OLD` as its own process (the CLI runs its own event loop)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "app",
        *args,
        "--cluster",
        OLD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return proc.returncode or 0, out.decode()


# -- a worker killed mid-handoff -------------------------------------------------------------


async def test_a_worker_killed_mid_handoff_loses_no_event_and_opens_no_second_run(
    records: dict[str, ClusterRecord],
    clients: dict[str, Client],
    store: MigrationStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A real `haul worker` process (HAUL_MIGRATION, polling both clusters) is SIGKILLed as
    soon as the snapshot is written, while events keep coming; a new one takes over. The
    handoff is asked through `haul migrate handoff`."""
    monkeypatch.setenv("HAUL_MIGRATION", "true")
    rec = records[OLD]
    start_worker(rec)
    try:
        async with router(clients, store) as sender:
            key = fresh()
            wf_id = await send(sender, key, "e-000", work_seconds=0.5)
            sent = ["e-000"]
            stop = asyncio.Event()

            async def load() -> None:
                # From before the migration starts, so the entity stays open on old.
                i = 0
                while not stop.is_set():
                    i += 1
                    event_id = f"e-{i:03d}"
                    await send(sender, key, event_id, work_seconds=0.5)
                    sent.append(event_id)
                    await asyncio.sleep(0.1)

            with OpenSampler(clients, wf_id) as sampler:
                loading = asyncio.create_task(load())
                await step(store, Action.START, old_cluster=OLD, new_cluster=NEW)
                await wait_for(lambda: _polled(clients[NEW]), f"the worker polling {NEW}")
                for action in (Action.ROUTE, Action.ROUTE, Action.ROUTE, Action.DRAIN):
                    await step(store, action)
                assert await status(clients[OLD], wf_id) == WorkflowExecutionStatus.RUNNING
                code, out = await haul("migrate", "handoff", "--yes")
                assert code == 0 and "asked 1 workflow(s) to hand off" in out, out
                handoffs = HandoffStore(store.db)
                for _ in range(6000):
                    if (at_kill := await asyncio.to_thread(handoffs.get, wf_id)) is not None:
                        break
                    await asyncio.sleep(0.01)
                assert at_kill is not None, "no snapshot within a minute"
                stop_worker(rec, sig=signal.SIGKILL)
                old_open_at_kill = (
                    await status(clients[OLD], wf_id) == WorkflowExecutionStatus.RUNNING
                )
                print(f"killed the worker: handoff {at_kill.status}, old open {old_open_at_kill}")
                await asyncio.sleep(1.5)
                start_worker(rec)
                await asyncio.sleep(2)
                stop.set()
                await loading
                book = await ledger(clients, wf_id, sent)
            assert sampler.both_open == 0 and sampler.samples > 20
            assert book[OLD] + book[NEW] == Counter(dict.fromkeys(sent, 1))
            row = handoffs.get(wf_id)
            assert row is not None and row.status is HandoffStatus.RESUMED
            old_run = await result_of(clients[OLD], wf_id, row.from_run_id)
            assert old_run.reason == HANDED_OFF
            code, out = await haul("migrate", "status")
            assert f"handed off from '{OLD}': 1 (0 not yet resumed" in out, out
    finally:
        stop_worker(rec)


async def _polled(client: Client) -> bool:
    return not await migration_checks.missing_pollers(client, SAMPLE)


# -- resumers that race or die -----------------------------------------------------------------


def snapshot_of(r: ClusterRouter, key: str, event_id: str) -> HandoffSnapshot:
    """A snapshot as a handed-off entity writes it, one event pending."""
    continuation = EntityInput(
        entity_key=key,
        pending=[EntityEvent(event_id)],
        seen_ids=[event_id],
        runs=1,
        processed=3,
        state={"work_seconds": 0.2},
    )
    return HandoffSnapshot(
        workflow_id=r.id_for(LedgerEntityWorkflow.run, key),
        workflow_type="LedgerEntityWorkflow",
        task_queue=DOMAIN.task_queue,
        from_run_id=f"gone-{key}",
        from_cluster=OLD,
        to_cluster=NEW,
        continuation=asdict(continuation),
    )


async def test_two_resumers_at_once_start_the_continuation_once(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """The first resumer is held inside the ID's lock, after its decision and before its
    start, while a second (another router: the resumer workflow, or a signal-with-start) tries."""
    async with (
        serving(clients, store, [NEW]),
        router(clients, store) as first,
        router(clients, store) as second,
    ):
        await to_draining(store)
        snap = snapshot_of(first, fresh(), "a")
        handoffs = HandoffStore(store.db)
        assert handoffs.record(snap) and not handoffs.record(snap)
        decided, release = asyncio.Event(), asyncio.Event()

        async def hold(op: str, target_id: str, cluster_name: str) -> None:
            decided.set()
            await release.wait()

        first.decision_hook = hold
        a = asyncio.create_task(first.resume_handoff(snap.workflow_id))
        await asyncio.wait_for(decided.wait(), 60)
        b = asyncio.create_task(second.resume_handoff(snap.workflow_id))
        await asyncio.sleep(0.5)
        assert not b.done(), "the second resumer must wait for the ID's lock"
        release.set()
        handles = [await a, await b]
        assert handles[0] is not None and handles[1] is None
        book = await ledger(clients, snap.workflow_id, ["a"])
    assert book == {OLD: Counter(), NEW: Counter({"a": 1})}
    assert len(await run_ids(clients[NEW], snap.workflow_id)) == 1
    row = HandoffStore(store.db).get(snap.workflow_id)
    assert row is not None and row.status is HandoffStatus.RESUMED
    assert row.resumed_run_id == handles[0].result_run_id


async def test_a_resumer_that_died_mid_resume_is_finished_without_a_second_start(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """A row left `resuming`: if a run of the ID started on the new cluster since the dead
    resumer noted its latest run, that was its start, and it is only marked; otherwise the
    continuation starts now."""
    async with serving(clients, store, [NEW]), router(clients, store) as r:
        await to_draining(store)
        handoffs = HandoffStore(store.db)
        started_then, not_started = snapshot_of(r, fresh(), "s"), snapshot_of(r, fresh(), "n")
        for snap in (started_then, not_started):
            handoffs.record(snap)
            with store.db.connect() as conn:
                handoffs.begin_resume(conn, snap.workflow_id, "")
        # The dead resumer's start of the first one went through.
        its_start = await clients[NEW].start_workflow(
            "LedgerEntityWorkflow",
            started_then.continuation,
            id=started_then.workflow_id,
            task_queue=DOMAIN.task_queue,
        )
        assert await r.resume_handoff(started_then.workflow_id) is None
        resumed = await r.resume_handoff(not_started.workflow_id)
        assert resumed is not None
        assert await r.resume_handoff(not_started.workflow_id) is None
        for snap, event_id in ((started_then, "s"), (not_started, "n")):
            book = await ledger(clients, snap.workflow_id, [event_id])
            assert book[NEW] == Counter({event_id: 1})
            assert len(await run_ids(clients[NEW], snap.workflow_id)) == 1
        row = handoffs.get(started_then.workflow_id)
        assert row is not None and row.status is HandoffStatus.RESUMED
        assert row.resumed_run_id == its_start.result_run_id
