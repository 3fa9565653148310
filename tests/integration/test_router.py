"""ClusterRouter on two real dev clusters and the real app database, with the races forced.

Each test starts from no migration row, walks the phases through the state store (waiting, as
`haul migrate` does, for each version to be in effect) and checks, on both clusters' own
records, where runs landed and that no ID ever had two runs at once.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from temporalio import workflow
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    WorkflowExecutionStatus,
    WorkflowFailureError,
)
from temporalio.exceptions import ChildWorkflowError, WorkflowAlreadyStartedError
from temporalio.worker import Worker

from app.core.settings import Settings
from app.core.target import Target
from app.domains.sample import DOMAIN
from app.domains.sample.activities import SampleActivities
from app.domains.sample.models import GreetingInput, LedgerBatch
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform import migration_checks
from app.platform.client import HaulClient, connect
from app.platform.discovery import Discovered, TaskQueueRegistration, discover
from app.platform.history import run_ids, scheduled_activity_inputs
from app.platform.migration_state import MigrationStore
from app.platform.phases import (
    Action,
    Facts,
    MigrationState,
    Phase,
    TransitionRefusedError,
    transition,
)
from app.platform.retry_on_signal import EntityEvent, EntityInput
from app.platform.router import ClusterRouter
from app.platform.worker import ClusterWorkers, build_workers
from app.stack.registry import ClusterRecord, Registry
from tests.integration.migration_clusters import clean_store, two_clusters

OLD, NEW = "rt-old", "rt-new"


@pytest.fixture(scope="module")
def records() -> Iterator[dict[str, ClusterRecord]]:
    with two_clusters(OLD, NEW) as recs:
        yield recs


@pytest_asyncio.fixture(scope="module")
async def clients(records: dict[str, ClusterRecord]) -> AsyncIterator[dict[str, Client]]:
    """A client and a sample worker (built by build_workers) per cluster."""
    conns = {n: await connect(n, config_file=str(Registry().profile_file)) for n in records}
    workers = [
        w
        for c in conns.values()
        for w in build_workers(c, discover(["app.domains.sample"]), Settings(), [DOMAIN.task_queue])
    ]
    runs = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield conns
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)


@pytest.fixture
def store(records: dict[str, ClusterRecord]) -> Iterator[MigrationStore]:
    """The state store on a clean slate: no migration row, no routers, no claims."""
    with clean_store(records[OLD].dsn()) as fresh_store:
        yield fresh_store


@asynccontextmanager
async def router(
    clients: dict[str, Client], store: MigrationStore | None, refresh: float = 0.1
) -> AsyncIterator[ClusterRouter]:
    async with ClusterRouter(clients, store, cluster=OLD, refresh_seconds=refresh) as r:
        yield r


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 120) -> None:
    for _ in range(int(timeout / 0.1)):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def step(store: MigrationStore, action: Action, **kw: object) -> MigrationState:
    """Announce a transition and wait until every live router has acknowledged it."""
    state = store.announce(action, actor="test", reason=f"test {action}", **kw)  # type: ignore[arg-type]
    await wait_for(
        lambda: asyncio.to_thread(store.in_effect, state.version), f"{state.stage} in effect"
    )
    return state


NEXT = {
    "dual": Action.ROUTE,
    "routing:guard": Action.ROUTE,
    "routing:claim": Action.ROUTE,
    "routing:lookup": Action.DRAIN,
    "draining": Action.MARK_DRAINED,
    "drained": Action.FINISH,
}


async def walk(store: MigrationStore, clients: dict[str, Client], to: str) -> MigrationState:
    """From where the migration is to the stage `to`, each step in effect before the next."""
    state = store.read()
    if state is None:
        state = await step(store, Action.START, old_cluster=OLD, new_cluster=NEW)
    while state.stage != to:
        action = NEXT[state.stage]
        if action is Action.MARK_DRAINED:
            await wait_for(lambda: drained(clients[OLD]), f"{OLD} drained")
            state = await step(store, action, facts=Facts(open_on_old=0))
        else:
            state = await step(store, action)
    return state


async def drained(client: Client) -> bool:
    return await migration_checks.open_workflows(client) == 0


async def runs_on(client: Client, wf_id: str) -> list[WorkflowExecutionStatus | None]:
    """Statuses of every run of the ID on one cluster, from its visibility and describe."""
    out = []
    for run in await run_ids(client, wf_id):
        out.append((await client.get_workflow_handle(wf_id, run_id=run).describe()).status)
    return out


async def landed(clients: dict[str, Client], wf_id: str) -> dict[str, int]:
    """How many runs of the ID each cluster holds (waiting out visibility lag for one)."""
    counts: dict[str, int] = {}

    async def seen() -> bool:
        counts.clear()
        counts.update({n: len(await run_ids(c, wf_id)) for n, c in clients.items()})
        return sum(counts.values()) > 0

    await wait_for(seen, f"a run of {wf_id}")
    return counts


async def processed(client: Client, wf_id: str) -> Counter[str]:
    """Event IDs in every process_ledger_batch input of every run of the ID on one cluster."""
    seen: Counter[str] = Counter()
    for run in await run_ids(client, wf_id):
        for batch in await scheduled_activity_inputs(
            client, wf_id, run, "process_ledger_batch", LedgerBatch
        ):
            seen.update(batch.event_ids)
    return seen


async def closed(client: Client, wf_id: str) -> None:
    async def done() -> bool:
        desc = await client.get_workflow_handle(wf_id).describe()
        return desc.status != WorkflowExecutionStatus.RUNNING

    await wait_for(done, f"{wf_id} closed")


def entity(key: str, work_seconds: float = 0.0) -> EntityInput:
    return EntityInput(entity_key=key, state={"work_seconds": work_seconds})


async def send(r: ClusterRouter, key: str, event_id: str, work_seconds: float = 0.0) -> str:
    handle = await r.signal_with_start(
        LedgerEntityWorkflow.run,
        entity(key, work_seconds),
        key,
        LedgerEntityWorkflow.on_event,
        EntityEvent(event_id),
    )
    return handle.id


def fresh() -> str:
    return uuid.uuid4().hex[:12]


# -- the checks that need a live cluster ----------------------------------------------------


async def test_preconditions_read_from_live_clusters(clients: dict[str, Client]) -> None:
    sample = discover(["app.domains.sample"])
    # Workers just started: their first polls reach the server within a moment.
    await wait_for(lambda: _none_missing(clients[NEW], sample), "sample polled on the new cluster")
    unpolled = Discovered()
    unpolled.queues["nobody-polls-this"] = TaskQueueRegistration(
        "nobody-polls-this", workflows=[GreetingWorkflow]
    )
    assert await migration_checks.missing_pollers(clients[NEW], unpolled) == [
        "nobody-polls-this (workflow)"
    ]
    assert await migration_checks.missing_namespaces(clients[NEW], {"haul": []}) == []
    missing = await migration_checks.missing_namespaces(
        clients[NEW], {"no-such-ns": [], "haul": ["NoSuchAttribute"]}
    )
    assert missing == ["haul:NoSuchAttribute", "no-such-ns"]
    facts = await migration_checks.facts(clients[OLD], clients[NEW], unpolled, {"haul": []})
    dual = MigrationState(old=OLD, new=NEW, phase=Phase.DUAL)
    with pytest.raises(TransitionRefusedError, match="no worker polls nobody-polls-this"):
        transition(dual, Action.ROUTE, facts)


async def _none_missing(client: Client, discovered: Discovered) -> bool:
    return await migration_checks.missing_pollers(client, discovered) == []


# -- where calls land -----------------------------------------------------------------------


async def test_one_cluster_adds_no_rpc_and_no_query(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    for st in (None, store):
        async with router(clients, st, refresh=3600) as r:
            key, task = fresh(), fresh()
            await send(r, key, "e1")
            await (await r.start(GreetingWorkflow.run, GreetingInput(name="x"), task)).result()
            await r.query(LedgerEntityWorkflow.run, key, LedgerEntityWorkflow.pending_count)
            assert await landed(clients, r.id_for(GreetingWorkflow.run, task)) == {OLD: 1, NEW: 0}
            assert await landed(clients, r.id_for(LedgerEntityWorkflow.run, key)) == {
                OLD: 1,
                NEW: 0,
            }
            assert r.stats.calls[("single", "start")] == 1
            assert not r.stats.extra_rpcs and not r.stats.db_queries


@pytest.mark.parametrize(
    ("stage", "starts_on", "rpcs", "queries"),
    [
        ("dual", OLD, 0, 0),
        ("routing:guard", OLD, 0, 3),
        ("routing:claim", NEW, 1, 3),
        ("routing:lookup", NEW, 1, 0),
        ("draining", NEW, 1, 0),
        ("drained", NEW, 1, 0),
        ("single", NEW, 0, 0),
    ],
)
async def test_new_work_lands_per_phase(
    clients: dict[str, Client],
    store: MigrationStore,
    stage: str,
    starts_on: str,
    rpcs: int,
    queries: int,
) -> None:
    async with router(clients, store) as r:
        # An entity and a long task opened on the old cluster before the migration began.
        old_key, old_task = fresh(), fresh()
        await send(r, old_key, "before", work_seconds=0.5)
        slow = await r.start(
            GreetingWorkflow.run, GreetingInput(name="slow", work_seconds=4), old_task
        )
        state = await walk(store, clients, stage)
        assert r.state.stage == stage
        key, task = fresh(), fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="n"), task)
        await send(r, key, "e1")
        other = NEW if starts_on == OLD else OLD
        for wf_id in (
            r.id_for(GreetingWorkflow.run, task),
            r.id_for(LedgerEntityWorkflow.run, key),
        ):
            assert await landed(clients, wf_id) == {starts_on: 1, other: 0}
        assert r.stats.per_call(stage, "start") == (rpcs, queries)
        if state.phase.value in ("dual", "routing"):
            # The task still open on old is joined there, not started again on new.
            joined = await r.start(GreetingWorkflow.run, GreetingInput(name="slow"), old_task)
            assert (await joined.result()).greeting == "Hello, slow!"
            assert await landed(clients, slow.id) == {OLD: 1, NEW: 0}


async def test_signal_query_cancel_go_where_the_run_is_open(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as r:
        on_old, on_new = fresh(), fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="o", work_seconds=30), on_old)
        await walk(store, clients, "routing:lookup")
        await r.start(GreetingWorkflow.run, GreetingInput(name="n", work_seconds=30), on_new)
        where = {t: (await r.handle(GreetingWorkflow.run, t))[0] for t in (on_old, on_new)}
        assert where == {on_old: OLD, on_new: NEW}
        await r.cancel(GreetingWorkflow.run, on_old)
        await r.cancel(GreetingWorkflow.run, on_new)
        for name, task in ((OLD, on_old), (NEW, on_new)):
            wf_id = r.id_for(GreetingWorkflow.run, task)
            await closed(clients[name], wf_id)
            assert await runs_on(clients[name], wf_id) == [WorkflowExecutionStatus.CANCELED]
        # An entity open on the new cluster is signalled and queried there.
        key = fresh()
        await send(r, key, "e1", work_seconds=3)
        await r.signal(
            LedgerEntityWorkflow.run, key, LedgerEntityWorkflow.on_event, EntityEvent("e2")
        )
        assert await r.query(LedgerEntityWorkflow.run, key, LedgerEntityWorkflow.pending_count) >= 0
        assert r.stats.extra_rpcs[("routing:lookup", "signal", "signal-new")] == 1
        assert r.stats.extra_rpcs[("routing:lookup", "cancel", "cancel-new")] == 1
        await closed(clients[NEW], r.id_for(LedgerEntityWorkflow.run, key))
        assert await processed(clients[NEW], r.id_for(LedgerEntityWorkflow.run, key)) == Counter(
            {"e1": 1, "e2": 1}
        )


async def test_a_task_that_succeeded_on_old_is_not_run_again_but_a_failed_one_is_redriven(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as r:
        done, failed = fresh(), fresh()
        await (await r.start(GreetingWorkflow.run, GreetingInput(name="d"), done)).result()
        failing = await r.start(GreetingWorkflow.run, GreetingInput(name="f", fail=True), failed)
        await closed(clients[OLD], failing.id)
        for stage in ("routing:claim", "routing:lookup", "draining"):
            await walk(store, clients, stage)
            with pytest.raises(WorkflowAlreadyStartedError):
                await r.start(GreetingWorkflow.run, GreetingInput(name="d"), done)
        assert await landed(clients, r.id_for(GreetingWorkflow.run, done)) == {OLD: 1, NEW: 0}
        redriven = await r.start(GreetingWorkflow.run, GreetingInput(name="f"), failed)
        assert (await redriven.result()).greeting == "Hello, f!"
        assert await landed(clients, failing.id) == {OLD: 1, NEW: 1}


# -- the races, forced ----------------------------------------------------------------------


async def test_entity_completing_between_lookup_and_signal_gets_the_event_once_on_new(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as r:
        key = fresh()
        wf_id = await send(r, key, "e1", work_seconds=3)
        await walk(store, clients, "routing:lookup")

        async def let_it_complete(op: str, target_id: str, cluster_name: str) -> None:
            if target_id == wf_id and cluster_name == OLD:
                await closed(clients[OLD], wf_id)

        r.decision_hook = let_it_complete
        await send(r, key, "e2")
        assert r.stats.extra_rpcs[("routing:lookup", "signal_with_start", "signal-old-closed")]
        await closed(clients[NEW], wf_id)
        assert await processed(clients[OLD], wf_id) == Counter({"e1": 1})
        assert await processed(clients[NEW], wf_id) == Counter({"e2": 1})


@pytest.mark.parametrize("first", ["guard", "claim"])
async def test_two_routers_a_step_apart_start_one_id_once(
    clients: dict[str, Client], store: MigrationStore, first: str
) -> None:
    """Router G is still at routing:guard while C is at routing:claim; one decides first and
    pauses holding its decision, the other starts the same ID meanwhile."""
    async with router(clients, store) as g, router(clients, store) as c:
        await walk(store, clients, "routing:guard")
        g.refresh_seconds = 3600  # G stays a step behind
        await asyncio.sleep(0.3)
        store.announce(Action.ROUTE, actor="test", reason="claim")
        await wait_for(lambda: _at(c, "routing:claim"), "router C at routing:claim")
        assert g.state.stage == "routing:guard"

        task = fresh()
        wf_id = g.id_for(GreetingWorkflow.run, task)
        leader, follower = (g, c) if first == "guard" else (c, g)
        decided, release = asyncio.Event(), asyncio.Event()

        async def hold(op: str, target_id: str, cluster_name: str) -> None:
            if target_id == wf_id:
                decided.set()
                await release.wait()

        leader.decision_hook = hold
        lead = asyncio.create_task(
            leader.start(GreetingWorkflow.run, GreetingInput(name="l", work_seconds=3), task)
        )
        await asyncio.wait_for(decided.wait(), 60)
        follow = asyncio.create_task(
            follower.start(GreetingWorkflow.run, GreetingInput(name="f", work_seconds=3), task)
        )
        await asyncio.sleep(1.0)
        follower_waited = not follow.done()
        release.set()
        a, b = await asyncio.gather(lead, follow)
        # Exactly one run across both clusters, where the leader decided.
        expected = OLD if first == "guard" else NEW
        assert await landed(clients, wf_id) == {expected: 1, ({OLD, NEW} - {expected}).pop(): 0}
        assert (await a.result()).greeting == (await b.result()).greeting
        assert follower_waited, "the follower must wait for the leader's decision"


async def _at(r: ClusterRouter, stage: str) -> bool:
    return r.state.stage == stage


async def test_a_router_behind_holds_the_transition_until_it_acknowledges(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as busy:
        await walk(store, clients, "dual")
        async with router(clients, store, refresh=3600) as asleep:
            await held_back(clients, store, busy, asleep)


async def held_back(
    clients: dict[str, Client], store: MigrationStore, busy: ClusterRouter, asleep: ClusterRouter
) -> None:
    # A call of `busy` begun under dual is in flight while routing:guard is announced.
    release = asyncio.Event()
    task = fresh()

    async def hold(op: str, target_id: str, cluster_name: str) -> None:
        await release.wait()

    busy.decision_hook = hold
    in_flight = asyncio.create_task(busy.start(GreetingWorkflow.run, GreetingInput(name="b"), task))
    await asyncio.sleep(0.3)
    guard = store.announce(Action.ROUTE, actor="test", reason="route")
    await wait_for(lambda: _at(busy, "routing:guard"), "busy router sees routing:guard")
    await asyncio.sleep(0.5)
    assert busy.acked_version == guard.version - 1
    behind = {row.router_id for row in store.behind(guard.version)}
    assert behind == {busy.router_id, asleep.router_id}
    assert not store.in_effect(guard.version)
    with pytest.raises(TransitionRefusedError, match="not every live router"):
        store.announce(Action.ROUTE, actor="test", reason="too early")

    busy.decision_hook = None
    release.set()
    await in_flight
    await wait_for(
        lambda: asyncio.to_thread(lambda: busy.router_id not in _behind(store, guard)),
        "busy router acknowledges",
    )
    # The router that has not refreshed still holds the transition back.
    assert [row.router_id for row in store.behind(guard.version)] == [asleep.router_id]
    assert not store.in_effect(guard.version)
    await asleep.refresh()
    assert store.in_effect(guard.version)
    assert await landed(clients, busy.id_for(GreetingWorkflow.run, task)) == {OLD: 1, NEW: 0}


def _behind(store: MigrationStore, state: MigrationState) -> set[str]:
    return {row.router_id for row in store.behind(state.version)}


async def test_a_stale_view_is_refreshed_before_a_call(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """A router whose lease ran out reads the state before routing, never acting on an old one."""
    async with router(clients, store, refresh=3600) as r:
        r.lease_seconds = 0.2
        await asyncio.sleep(0.3)
        state = store.announce(
            Action.START, actor="test", reason="start", old_cluster=OLD, new_cluster=NEW
        )
        await r.signal_with_start(
            LedgerEntityWorkflow.run,
            entity("k"),
            fresh(),
            LedgerEntityWorkflow.on_event,
            EntityEvent("e"),
        )
        assert r.state.version == state.version
        assert r.stats.db_queries[("dual", "signal_with_start", "lease-refresh")] == 2


def test_routers_unknown_cluster_is_refused() -> None:
    with pytest.raises(ValueError, match="no client for cluster 'x'"):
        ClusterRouter({}, None, cluster="x")


async def test_a_call_cancelled_while_waiting_for_the_id_lock_leaks_no_lock(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as r:
        await walk(store, clients, "routing:guard")
        task = fresh()
        decided, release = asyncio.Event(), asyncio.Event()

        async def hold(op: str, target_id: str, cluster_name: str) -> None:
            if not release.is_set():
                decided.set()
                await release.wait()

        r.decision_hook = hold
        # Still open at the last start below, which joins it (a finished task is not re-run).
        holder = asyncio.create_task(
            r.start(GreetingWorkflow.run, GreetingInput(name="h", work_seconds=5), task)
        )
        await asyncio.wait_for(decided.wait(), 60)
        waiter = asyncio.create_task(r.start(GreetingWorkflow.run, GreetingInput(name="w"), task))
        await asyncio.sleep(0.5)
        waiter.cancel()
        release.set()
        await holder
        with pytest.raises(asyncio.CancelledError):
            await waiter
        # The lock the cancelled waiter took afterwards was released: the next call proceeds.
        await asyncio.wait_for(r.start(GreetingWorkflow.run, GreetingInput(name="n"), task), 60)
        assert await landed(clients, r.id_for(GreetingWorkflow.run, task)) == {OLD: 1, NEW: 0}


async def test_an_abort_from_lookup_walks_back_to_the_old_cluster(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as r:
        on_old = fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="o", work_seconds=20), on_old)
        await walk(store, clients, "routing:lookup")
        on_new = fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="n", work_seconds=20), on_new)

        both_new = await step(store, Action.ABORT)
        assert both_new.stage == "routing:both_new"
        late_new = fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="x"), late_new)
        assert r.stats.per_call("routing:both_new", "start") == (2, 2)

        both_old = await step(store, Action.ABORT)
        assert both_old.stage == "routing:both_old"
        back_old = fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="y"), back_old)
        # Runs open on either cluster are joined where they are, whatever the step's target.
        for task in (on_old, on_new):
            await r.start(GreetingWorkflow.run, GreetingInput(name="again"), task)

        swapped = await step(store, Action.ABORT)
        assert (swapped.old, swapped.new, swapped.stage) == (NEW, OLD, "routing:lookup")
        swapped_task = fresh()
        await r.start(GreetingWorkflow.run, GreetingInput(name="z"), swapped_task)
        await r.start(GreetingWorkflow.run, GreetingInput(name="again"), on_new)

        expected = {
            on_old: OLD,
            on_new: NEW,
            late_new: NEW,
            back_old: OLD,
            swapped_task: OLD,
        }
        for task, name in expected.items():
            other = NEW if name == OLD else OLD
            assert await landed(clients, r.id_for(GreetingWorkflow.run, task)) == {
                name: 1,
                other: 0,
            }
        for task in (on_old, on_new):
            await r.cancel(GreetingWorkflow.run, task)


async def test_transitions_are_recorded_with_who_why_and_when(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store):
        await walk(store, clients, "routing:claim")
    rows = store.history()
    assert [(r["from_phase"], r["to_phase"]) for r in rows] == [
        ("single", "dual"),
        ("dual", "routing:guard"),
        ("routing:guard", "routing:claim"),
    ]
    assert [r["version"] for r in rows] == [1, 2, 3]
    assert {r["actor"] for r in rows} == {"test"}
    assert rows[1]["reason"] == "test route"
    assert set(store.began()) == {"dual", "routing:guard", "routing:claim"}
    assert store.routers() == []


class CallCounter(Interceptor):
    """Counts the client's outbound calls by kind: what a HaulClient sends."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _Counting(next, self.calls)


class _Counting(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, calls: Counter[str]) -> None:
        super().__init__(next)
        self.calls = calls

    async def start_workflow(self, input: Any) -> Any:
        self.calls["start_workflow"] += 1
        return await super().start_workflow(input)

    async def signal_workflow(self, input: Any) -> None:
        self.calls["signal_workflow"] += 1
        await super().signal_workflow(input)

    async def query_workflow(self, input: Any) -> Any:
        self.calls["query_workflow"] += 1
        return await super().query_workflow(input)

    async def cancel_workflow(self, input: Any) -> None:
        self.calls["cancel_workflow"] += 1
        await super().cancel_workflow(input)

    async def describe_workflow(self, input: Any) -> Any:
        self.calls["describe_workflow"] += 1
        return await super().describe_workflow(input)


async def test_haul_client_on_one_cluster_adds_no_rpc_and_no_query(
    records: dict[str, ClusterRecord], clients: dict[str, Client]
) -> None:
    """Outside a migration every HaulClient call is exactly the one call it asks for."""
    counter = CallCounter()
    haul = HaulClient(
        await connect(OLD, config_file=str(Registry().profile_file), interceptors=[counter])
    )
    task, key, long = fresh(), fresh(), fresh()
    await (await haul.start(GreetingWorkflow.run, GreetingInput(name="one"), task)).result()
    await haul.signal_with_start(
        LedgerEntityWorkflow.run,
        entity(key, 2),
        key,
        LedgerEntityWorkflow.on_event,
        EntityEvent("a"),
    )
    await haul.signal(
        LedgerEntityWorkflow.run, key, LedgerEntityWorkflow.on_event, EntityEvent("b")
    )
    await haul.query(LedgerEntityWorkflow.run, key, LedgerEntityWorkflow.pending_count)
    await haul.start(GreetingWorkflow.run, GreetingInput(name="l", work_seconds=30), long)
    await haul.cancel(GreetingWorkflow.run, long)
    assert counter.calls == Counter(
        start_workflow=3, signal_workflow=1, query_workflow=1, cancel_workflow=1
    )
    assert haul.router.store is None
    assert not haul.router.stats.extra_rpcs and not haul.router.stats.db_queries


async def test_haul_client_from_a_migration_target_follows_the_state(
    records: dict[str, ClusterRecord],
    clients: dict[str, Client],
    store: MigrationStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A process given its cluster's profile and HAUL_MIGRATION learns of a migration started
    after it was, connects to the new cluster by its profile (TEMPORAL_ADDRESS, which would
    send both nowhere, is ignored), acknowledges each step and routes there."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
    haul = await HaulClient.connect(migration_target(records), refresh_seconds=0.1)
    try:
        assert set(haul.router.clients) == {OLD}
        await walk(store, clients, "routing:lookup")
        assert set(haul.router.clients) == {OLD, NEW}
        task = fresh()
        await (await haul.start(GreetingWorkflow.run, GreetingInput(name="m"), task)).result()
        assert await landed(clients, haul.id_for(GreetingWorkflow.run, task)) == {OLD: 0, NEW: 1}
        assert haul.router.stats.per_call("routing:lookup", "start") == (1.0, 0.0)
    finally:
        await haul.close()
    assert not store.routers(), "a router that closes leaves the table at once"


def migration_target(records: dict[str, ClusterRecord]) -> Target:
    return Target(
        cluster=OLD,
        profile=OLD,
        config_file=str(Registry().profile_file),
        database_url=records[OLD].dsn(),
        migration=True,
    )


async def test_one_worker_process_polls_both_clusters_from_dual_to_single_on_new(
    records: dict[str, ClusterRecord], clients: dict[str, Client], store: MigrationStore
) -> None:
    """ClusterWorkers (what `haul worker` runs): old alone, both from dual, new alone after
    finish; its activities reach workflows through the process's router."""
    queue = f"tq-{uuid.uuid4()}"
    found = Discovered()
    found.queues[queue] = TaskQueueRegistration(
        queue, workflows=[GreetingWorkflow], activity_classes=[SampleActivities]
    )
    haul = await HaulClient.connect(migration_target(records), refresh_seconds=0.1)
    pool = ClusterWorkers(
        haul, lambda c: build_workers(c, found, Settings(graceful_shutdown_seconds=1), haul=haul)
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(pool.serve(stop, check_seconds=0.1))

    async def polled_on(name: str) -> bool:
        return not await migration_checks.missing_pollers(clients[name], found)

    async def greet(name: str) -> str:
        handle = await clients[name].start_workflow(
            GreetingWorkflow.run, GreetingInput(name=name), id=fresh(), task_queue=queue
        )
        return (await asyncio.wait_for(handle.result(), 30)).greeting

    try:
        await wait_for(lambda: polled_on(OLD), "polling on the old cluster")
        assert set(pool.running) == {OLD}
        await walk(store, clients, "dual")
        await wait_for(lambda: polled_on(NEW), "polling on the new cluster too")
        assert set(pool.running) == {OLD, NEW}
        assert [await greet(OLD), await greet(NEW)] == ["Hello, rt-old!", "Hello, rt-new!"]
        old_workers, old_tasks = pool.running[OLD]
        await walk(store, clients, "drained")
        await step(store, Action.FINISH)
        await wait_for(lambda: asyncio.sleep(0, set(pool.running) == {NEW}), "old workers gone")
        assert all(t.done() and not t.exception() for t in old_tasks)
        assert await greet(NEW) == "Hello, rt-new!"
    finally:
        stop.set()
        await serving
        await haul.close()


async def test_a_redrive_during_routing_starts_on_new_and_never_reruns_a_success(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """`haul failures redrive` goes through the router: a task that failed on the old
    cluster runs again on the new one; one that succeeded there is refused, not re-run."""
    async with router(clients, store) as r:
        failed, done = fresh(), fresh()
        failing = await r.start(GreetingWorkflow.run, GreetingInput(name="f", fail=True), failed)
        with pytest.raises(WorkflowFailureError):
            await failing.result()
        await (await r.start(GreetingWorkflow.run, GreetingInput(name="d"), done)).result()
        await walk(store, clients, "routing:lookup")
        args = [{"name": "f", "work_seconds": 0.0, "fail": False}]
        queue = DOMAIN.task_queue
        redriven = await r.redrive("GreetingWorkflow", args, failing.id, queue)
        assert (await redriven.result())["greeting"] == "Hello, f!"
        assert await landed(clients, failing.id) == {OLD: 1, NEW: 1}
        done_id = r.id_for(GreetingWorkflow.run, done)
        with pytest.raises(WorkflowAlreadyStartedError):
            await r.redrive("GreetingWorkflow", args, done_id, queue)
        assert await landed(clients, done_id) == {OLD: 1, NEW: 0}


# -- the look-up cache (app/platform/lookup_cache.py) ---------------------------------------


def describes(r: ClusterRouter, stage: str, op: str, role: str = "old") -> int:
    return r.stats.extra_rpcs[(stage, op, f"describe-{role}")]


async def test_a_final_answer_on_old_spares_the_next_look_up_in_lookup_and_draining(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """Absent on old, or closed there without success: the first call describes the ID on old
    and starts on new; later calls (and those after lookup -> draining) go to new from the
    cache, with no describe, and join the run there."""
    async with router(clients, store) as r:
        failed = fresh()
        failing = await r.start(GreetingWorkflow.run, GreetingInput(name="f", fail=True), failed)
        await closed(clients[OLD], failing.id)
        await walk(store, clients, "routing:lookup")
        key, task = fresh(), fresh()
        for event in ("e1", "e2"):
            await send(r, key, event, work_seconds=5)
            await r.start(GreetingWorkflow.run, GreetingInput(name="n", work_seconds=30), task)
            await r.start(GreetingWorkflow.run, GreetingInput(name="f", work_seconds=30), failed)
        stage = "routing:lookup"
        assert describes(r, stage, "signal_with_start") == describes(r, stage, "start") - 1 == 1
        assert r.stats.cache_hits[(stage, "signal_with_start")] == 1
        assert r.stats.cache_hits[(stage, "start")] == 2
        await walk(store, clients, "draining")
        await send(r, key, "e3")
        await r.start(GreetingWorkflow.run, GreetingInput(name="n"), task)
        assert describes(r, "draining", "signal_with_start") == describes(r, "draining", "start")
        assert describes(r, "draining", "start") == 0
        assert r.stats.hits_per_call("draining", "start") == 1.0
        entity_id = r.id_for(LedgerEntityWorkflow.run, key)
        assert (await landed(clients, entity_id))[OLD] == 0
        assert await landed(clients, r.id_for(GreetingWorkflow.run, task)) == {OLD: 0, NEW: 1}
        assert await landed(clients, failing.id) == {OLD: 1, NEW: 1}
        for t in (task, failed):
            await r.cancel(GreetingWorkflow.run, t)
        await closed(clients[NEW], entity_id)
        assert await processed(clients[NEW], entity_id) == Counter({"e1": 1, "e2": 1, "e3": 1})


async def test_an_open_run_on_old_is_never_cached(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """An entity open on old is joined there on every call while it is open (each call looks
    it up); once it completes, the next event starts it on new: every event processed once."""
    async with router(clients, store) as r:
        key = fresh()
        wf_id = await send(r, key, "e1", work_seconds=6)
        await walk(store, clients, "routing:lookup")
        assert (await clients[OLD].get_workflow_handle(wf_id).describe()).status == (
            WorkflowExecutionStatus.RUNNING
        )
        await send(r, key, "e2")
        await send(r, key, "e3")
        await closed(clients[OLD], wf_id)
        await send(r, key, "e4")
        await closed(clients[NEW], wf_id)
        assert await processed(clients[OLD], wf_id) == Counter({"e1": 1, "e2": 1, "e3": 1})
        assert await processed(clients[NEW], wf_id) == Counter({"e4": 1})
        stage = "routing:lookup"
        assert describes(r, stage, "signal_with_start") == 3
        assert r.stats.cache_hits[(stage, "signal_with_start")] == 0


async def test_a_task_that_succeeded_on_old_stays_refused_from_the_cache(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    async with router(clients, store) as r:
        done = fresh()
        await (await r.start(GreetingWorkflow.run, GreetingInput(name="d"), done)).result()
        await walk(store, clients, "routing:lookup")
        for stage in ("routing:lookup", "draining"):
            await walk(store, clients, stage)
            for _ in range(2):
                with pytest.raises(WorkflowAlreadyStartedError):
                    await r.start(GreetingWorkflow.run, GreetingInput(name="d"), done)
        assert describes(r, "routing:lookup", "start") == 1
        assert r.stats.cache_hits[("routing:lookup", "start")] == 1
        assert r.stats.cache_hits[("draining", "start")] == 2
        done_id = r.id_for(GreetingWorkflow.run, done)
        # A redrive never reads the cache (it may name a child): it looks again, and refuses.
        args = [{"name": "d", "work_seconds": 0.0, "fail": False}]
        with pytest.raises(WorkflowAlreadyStartedError):
            await r.redrive("GreetingWorkflow", args, done_id, DOMAIN.task_queue)
        assert describes(r, "draining", "redrive") == 1
        assert r.stats.cache_hits[("draining", "redrive")] == 0
        assert await landed(clients, done_id) == {OLD: 1, NEW: 0}


async def test_an_abort_never_reads_an_answer_cached_before_it(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """Cached in lookup: the task was absent on old, so it went new. After the abort swaps the
    roles, that cluster is the old one, where the task is still open: it is joined there, not
    started again on the other cluster from the stale "gone from old, go new"."""
    async with router(clients, store) as r:
        await walk(store, clients, "routing:lookup")
        task = fresh()
        for _ in range(2):
            await r.start(GreetingWorkflow.run, GreetingInput(name="t", work_seconds=30), task)
        assert r.stats.cache_hits[("routing:lookup", "start")] == 1
        for _ in range(3):
            state = await step(store, Action.ABORT)
            await r.start(GreetingWorkflow.run, GreetingInput(name="t"), task)
        assert (state.old, state.new, state.stage) == (NEW, OLD, "routing:lookup")
        wf_id = r.id_for(GreetingWorkflow.run, task)
        assert await landed(clients, wf_id) == {OLD: 0, NEW: 1}
        assert sum(r.stats.cache_hits.values()) == 1
        assert describes(r, "routing:lookup", "start") == 2  # one before, one after the swap
        await r.cancel(GreetingWorkflow.run, task)


@workflow.defn(sandboxed=False)
class ParentOfGreeting:
    """Starts a GreetingWorkflow child under the ID the router would give that task."""

    @workflow.run
    async def run(self, child_id: str) -> str:
        try:
            await workflow.execute_child_workflow(
                GreetingWorkflow.run,
                GreetingInput(name="child", fail=True),
                id=child_id,
                task_queue=DOMAIN.task_queue,
            )
        except ChildWorkflowError:
            return "failed"
        return "done"


async def test_a_closed_child_on_old_is_looked_up_every_time(
    clients: dict[str, Client], store: MigrationStore
) -> None:
    """A child that failed on old is not a final answer: its parent, had it been still open
    (or reset), could start it there again. So each start looks it up (and runs it on new)."""
    async with router(clients, store) as r:
        task = fresh()
        child_id = r.id_for(GreetingWorkflow.run, task)
        queue = f"tq-{uuid.uuid4()}"
        async with Worker(clients[OLD], task_queue=queue, workflows=[ParentOfGreeting]):
            parent = await clients[OLD].start_workflow(
                ParentOfGreeting.run, child_id, id=fresh(), task_queue=queue
            )
            assert await parent.result() == "failed"
        await walk(store, clients, "routing:lookup")
        for _ in range(2):
            await r.start(GreetingWorkflow.run, GreetingInput(name="c", work_seconds=30), task)
        assert describes(r, "routing:lookup", "start") == 2
        assert r.stats.cache_hits[("routing:lookup", "start")] == 0
        assert await landed(clients, child_id) == {OLD: 1, NEW: 1}
        await r.cancel(GreetingWorkflow.run, task)
