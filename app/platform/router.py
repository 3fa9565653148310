"""ClusterRouter: every start, signal, query and cancel by deterministic ID, across a migration.

Temporal keeps one open run per workflow ID only inside one cluster, and routers learn of a
phase change one by one. The router keeps two promises across both clusters anyway:
(I1) at most one open run per ID; (I2) a task that succeeded is not run again.

How a phase change reaches the routers
    Each router re-reads the state every `refresh_seconds` and heartbeats the version it
    acknowledges. It acknowledges version v only once no call it began under an older version
    is still running (in-flight calls are counted per version), so "every live router acked v"
    means no call anywhere still acts on an older decision. A transition is announced only when
    the current version is in effect, so at most two adjacent steps are ever live together.
    A router whose last successful refresh is older than its lease refuses new calls until it
    refreshes, and every RPC it sends carries a timeout that ends before its heartbeat goes
    stale (TTL): a router cut off from the database falls silent before the others stop
    waiting for it, so a dead router cannot act on an old decision either.
    A step therefore takes effect within one refresh interval plus the longest call in flight
    when it was announced; a router that died without leaving holds it up for at most the TTL.

Where a new run goes (start, signal-with-start), per step; "lock" is a Postgres advisory lock
on the ID held across the Temporal calls, "look up" is DescribeWorkflowExecution:
    single, dual   the old cluster, as before (no extra RPC, no query).
    routing:guard  lock; if the ID was claimed for the new cluster go there, else old.
    routing:claim  lock; look up on old: open -> join/signal there; a succeeded task -> not
                   run again; otherwise claim the ID for new and start there.
    routing:lookup, draining, drained
                   no lock: look up on old as above (or take its cached final answer);
                   otherwise start on new.
    abort: both_new / both_old
                   lock; look up on old and new: open -> there; succeeded task -> not again;
                   otherwise start on new / on old. Then the roles swap (routing:lookup back).

Why each pair of neighbouring steps keeps I1 and I2
    dual + guard: both start on old (no claim exists before routing:claim is announced).
    guard + claim: the only steps that start on different clusters, and both hold the ID's
        lock from decision to start. A claim router that finds old empty writes its claim
        before it starts on new; a guard router reads claims under the same lock. So either
        the guard's run exists on old before the lookup (join it), or the claim exists
        before the guard decides (go new).
    claim + lookup: neither ever creates a run on old, and both start on new only after
        seeing no open run and no succeeded task on old. Runs on old are made only by guard
        and dual routers, and none of their calls is in flight once `claim` is in effect.
        A join never creates: a task joins by returning the open run's handle, and an entity
        is signalled there without a run ID, so a continued-as-new chain is followed and a
        signal that finds the run closed falls back to signal-with-start on new: the event
        went nowhere else, so it is processed once.
    lookup + draining + drained: the same rule.
    drained + single(new): both start only on new.
    Abort: lookup/draining + both_new start only on new; both_new + both_old and claim +
        both_old decide under the ID's lock, each after looking where the other starts;
        both_old + (swapped) lookup start only on old.
    I2 holds on the cluster a run is started on through ALLOW_DUPLICATE_FAILED_ONLY, and on the
    other cluster through the look-up. A succeeded task raises WorkflowAlreadyStartedError in
    every phase, as the server does inside one cluster.

Handoff (from draining on; app/platform/handoff.py)
    A handed-off run writes its continuation to a handoff row, then completes on the old
    cluster; events that reach it meanwhile are appended to the row. The continuation is
    started on the row's cluster once, by the first caller to find the old run closed, under
    the ID's lock (`resume_handoff`): the resumer workflow, or a signal-with-start whose
    look-up found the run closed with the handed-off memo (or whose signal found it closed),
    or a signal that found the ID closed everywhere, before it would start a fresh one. So
    the old run is closed before the new one opens (I1), and every event is in the snapshot,
    forwarded into it, or signalled to the continuation, which dedupes by event ID.

The look-up cache (app/platform/lookup_cache.py), in lookup, draining and drained only
    What a look-up on old found is final there once lookup is in effect: no router in these
    steps (nor claim, the step before) creates a run on old, and every guard call ended before
    claim took effect. So an ID absent on old, or closed there without success, stays so: the
    next start or signal-with-start goes to new without a describe (and a run this router then
    started on new is found through the same entry); a task that succeeded on old stays
    refused. Never cached: an open run (it closes), a run closed as handed off (its
    continuation may wait to be resumed). Entries keep only across consecutive versions of
    these three steps of one migration; an abort (both_old starts on old again, then the roles
    swap), finish, or a jump over unseen versions drops them, and a call begun before such a
    change neither reads nor writes them. Outside routers, runs on old are created by:
    - a parent still open on old starting a child by its deterministic ID. Routers start no
      child type except by redrive, which bypasses the cache, and a closed run with a parent
      is not cached. (A type that is both router-started and a child would break the look-up
      itself, cached or not: the parent may start it after any look-up.)
    - a reset of a closed run on old (`haul failures redrive --mode reset`, or by hand)
      reopens the ID there behind any look-up, cached or not: from lookup on, re-run a
      failure on old (it goes to new) instead of resetting it.
    - retention deleting a closed run: "gone" stays gone; a cached success still refuses a
      task that a describe would now find absent, which errs on the side of I2.

Signal, query, cancel go where the ID has an open run: old first while dual/routing/draining,
new first once drained; they do not use the cache (an open run is what they look for).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import psycopg
from temporalio import workflow as wf
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.types import (
    MethodAsyncSingleParam,
    MethodSyncOrAsyncNoParam,
    MethodSyncOrAsyncSingleParam,
    ParamType,
    ReturnType,
    SelfType,
)

from app.core.settings import ROUTER_CACHE_SIZE
from app.platform.discovery import task_queue_for
from app.platform.handoff_models import HANDED_OFF_MEMO
from app.platform.handoff_store import HandoffStore, ResumeStep, resume_step
from app.platform.ids import workflow_id
from app.platform.lookup_cache import GONE, Entry, LookupCache, OldAnswer
from app.platform.migration_state import MigrationStore
from app.platform.phases import MigrationState, Phase, Step

log = logging.getLogger("haul.router")

T = TypeVar("T")
SignalArg = TypeVar("SignalArg")
QueryResult = TypeVar("QueryResult")
# Test hook, awaited after a new run's placement is decided and before it is acted on:
# (operation, workflow ID, cluster name).
DecisionHook = Callable[[str, str, str], Awaitable[None]]

_LOCKED = (Step.GUARD, Step.CLAIM, Step.BOTH_NEW, Step.BOTH_OLD)
# Seconds kept between an RPC's deadline and the moment other routers stop waiting for us.
_FENCE_MARGIN = 1.0


class RouterStaleError(RuntimeError):
    """The router could not refresh the migration state in time, so it will not route."""


@dataclass
class RouterStats:
    """What routing cost, keyed by stage (`routing:claim`) and operation (`start`).

    `extra_rpcs` and `db_queries` add the kind (`describe-old`, `lock` ...): the calls a
    single-cluster client would not make. `cache_hits` counts calls placed from the look-up
    cache instead of a describe on the old cluster.
    """

    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    extra_rpcs: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    db_queries: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    cache_hits: Counter[tuple[str, str]] = field(default_factory=Counter)

    def per_call(self, stage: str, op: str) -> tuple[float, float]:
        """Mean extra RPCs and database queries per call of `op` at `stage`."""
        calls = self.calls[(stage, op)]
        if not calls:
            return 0.0, 0.0
        rpcs = sum(n for (s, o, _), n in self.extra_rpcs.items() if (s, o) == (stage, op))
        queries = sum(n for (s, o, _), n in self.db_queries.items() if (s, o) == (stage, op))
        return rpcs / calls, queries / calls

    def hits_per_call(self, stage: str, op: str) -> float:
        """Share of `op` calls at `stage` that the look-up cache answered."""
        calls = self.calls[(stage, op)]
        return self.cache_hits[(stage, op)] / calls if calls else 0.0


def _definition(run: Callable[..., Awaitable[Any]]) -> wf._Definition:
    return wf._Definition.must_from_run_fn(run)


def _not_found(err: RPCError) -> bool:
    return err.status == RPCStatusCode.NOT_FOUND


@dataclass
class _Call:
    """One routed call: the view it began under and the stats key."""

    view: MigrationState
    op: str
    # The look-up cache generation this call reads and writes; None: no cache for it.
    cache_gen: int | None = None

    @property
    def stage(self) -> str:
        return self.view.stage


class ClusterRouter:
    """Routes calls by deterministic workflow ID to the cluster that should serve them.

    `clients` maps cluster name to a connected Client (built by the caller). Without a
    `store` the router serves `cluster` alone and never touches a database. `connector`
    connects to a cluster a new state names that `clients` lacks, so a process learns of a
    migration started after it was, without a restart. `cache_size` bounds the look-up cache
    (app/platform/lookup_cache.py; 0 turns it off).
    """

    def __init__(
        self,
        clients: Mapping[str, Client],
        store: MigrationStore | None = None,
        *,
        cluster: str,
        refresh_seconds: float = 1.0,
        lease_seconds: float | None = None,
        router_id: str | None = None,
        connector: Callable[[str], Awaitable[Client]] | None = None,
        cache_size: int = ROUTER_CACHE_SIZE,
    ) -> None:
        if cluster not in clients:
            raise ValueError(f"no client for cluster {cluster!r}; have {sorted(clients)}")
        self.clients = dict(clients)
        self.connector = connector
        self.store = store
        self.handoffs = HandoffStore(store.db) if store else None
        self.refresh_seconds = refresh_seconds
        ttl = store.ttl_seconds if store else 0.0
        self.lease_seconds = lease_seconds if lease_seconds is not None else ttl / 3
        if store and not 0 < self.lease_seconds < ttl - _FENCE_MARGIN:
            raise ValueError(
                f"lease {self.lease_seconds}s must be under the store's TTL {ttl}s "
                f"minus {_FENCE_MARGIN}s"
            )
        self.router_id = router_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stats = RouterStats()
        self.decision_hook: DecisionHook | None = None
        self.cache = LookupCache(cache_size)
        self._view = MigrationState(old=cluster)
        self._inflight: Counter[int] = Counter()
        self._refreshed_at = -float("inf")
        self._task: asyncio.Task[None] | None = None
        # Database work blocks (psycopg_pool); an ID lock wait must not starve the loop's
        # default executor, so the router brings its own.
        self._executor = ThreadPoolExecutor(
            max_workers=max(2, store.db.size) if store else 1, thread_name_prefix="router-db"
        )
        # A locked ID holds a pooled connection and needs executor threads until unlocked:
        # with every thread waiting for a connection held by a lock holder, nothing (refresh
        # and heartbeat included) moves until the pool times out. Two stay free.
        self._lock_slots = asyncio.Semaphore(max(1, store.db.size - 2) if store else 1)

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> ClusterRouter:
        """Read the state, register this router, and keep both fresh in the background."""
        if self.store is not None and self._task is None:
            await self.refresh()
            self._task = asyncio.create_task(self._refresh_loop(), name="router-refresh")
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
            if self.store is not None:
                await self._db(self.store.forget_router, self.router_id)
        self._executor.shutdown(wait=False)

    async def __aenter__(self) -> ClusterRouter:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def state(self) -> MigrationState:
        """The state new calls are routed by."""
        return self._view

    @property
    def acked_version(self) -> int:
        """The newest version no in-flight call of this router predates."""
        return min([self._view.version, *self._inflight])

    async def refresh(self) -> MigrationState:
        """Re-read the state and heartbeat this router's acknowledgement (two queries)."""
        assert self.store is not None
        began = time.monotonic()
        state = await self._db(self.store.read)
        if state is not None and state.version != self._view.version:
            unknown = await self._connect_missing(state)
            if unknown:
                # Never acknowledge a state we cannot serve: the transition stays not in effect.
                log.error(
                    "router has no client for cluster(s) %s; staying at %s",
                    unknown,
                    self._view.stage,
                )
            else:
                log.info(
                    "router %s: %s -> %s (version %s)",
                    self.router_id,
                    self._view.stage,
                    state.stage,
                    state.version,
                )
                self.cache.follow(self._view, state)
                self._view = state
        await self._db(
            self.store.heartbeat,
            self.router_id,
            socket.gethostname(),
            os.getpid(),
            self.acked_version,
        )
        self._refreshed_at = began
        return self._view

    async def _connect_missing(self, state: MigrationState) -> list[str]:
        """Connect to the clusters `state` names that this router has no client for yet;
        return those it still cannot reach."""
        unknown = [c for c in (state.old, state.new) if c and c not in self.clients]
        if self.connector is None:
            return unknown
        left = []
        for name in unknown:
            try:
                self.clients[name] = await self.connector(name)
            except Exception as err:
                log.error("router cannot connect to cluster %r: %s", name, err)
                left.append(name)
        return left

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception:
                log.warning("router could not refresh the migration state", exc_info=True)

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _lock_id(self, wf_id: str) -> psycopg.Connection[Any]:
        """Take the ID's lock; a caller cancelled meanwhile still gets it released."""
        assert self.store is not None
        store = self.store
        await self._lock_slots.acquire()
        taking = asyncio.get_running_loop().run_in_executor(self._executor, store.lock_id, wf_id)
        try:
            return await asyncio.shield(taking)
        except asyncio.CancelledError:

            def release(done: asyncio.Future[psycopg.Connection[Any]]) -> None:
                if not done.cancelled() and done.exception() is None:
                    self._executor.submit(store.unlock_id, done.result(), wf_id)
                self._lock_slots.release()

            taking.add_done_callback(release)
            raise
        except BaseException:
            self._lock_slots.release()
            raise

    async def _unlock_id(self, conn: psycopg.Connection[Any], wf_id: str) -> None:
        """Release the ID's lock even if the caller is cancelled while it is released."""
        assert self.store is not None
        releasing = asyncio.get_running_loop().run_in_executor(
            self._executor, self.store.unlock_id, conn, wf_id
        )
        releasing.add_done_callback(lambda _: self._lock_slots.release())
        await asyncio.shield(releasing)

    # -- call bookkeeping -----------------------------------------------------------------

    @asynccontextmanager
    async def _call(self, op: str) -> AsyncIterator[_Call]:
        if self.store is not None and time.monotonic() - self._refreshed_at > self.lease_seconds:
            try:
                await self.refresh()
            except Exception as err:
                raise RouterStaleError(
                    f"router {self.router_id} could not read the migration state for "
                    f"{self.lease_seconds:.1f}s; check the app database"
                ) from err
            self.stats.db_queries[(self._view.stage, op, "lease-refresh")] += 2
        call = _Call(self._view, op, self.cache.generation_for(self._view))
        self._inflight[call.view.version] += 1
        self.stats.calls[(call.stage, op)] += 1
        try:
            yield call
        finally:
            self._inflight[call.view.version] -= 1
            if not self._inflight[call.view.version]:
                del self._inflight[call.view.version]

    def _rpc_timeout(self) -> timedelta | None:
        """Time left before other routers would stop waiting for this one (the fence)."""
        if self.store is None:
            return None
        left = self._refreshed_at + self.store.ttl_seconds - _FENCE_MARGIN - time.monotonic()
        if left <= 0:
            raise RouterStaleError(
                f"router {self.router_id} has not heartbeated within its TTL; not routing"
            )
        return timedelta(seconds=left)

    async def _decided(self, call: _Call, wf_id: str, cluster: str) -> None:
        if self.decision_hook is not None:
            await self.decision_hook(call.op, wf_id, cluster)

    def _extra(self, call: _Call, kind: str) -> None:
        self.stats.extra_rpcs[(call.stage, call.op, kind)] += 1

    def _query(self, call: _Call, kind: str, n: int = 1) -> None:
        self.stats.db_queries[(call.stage, call.op, kind)] += n

    def _role(self, call: _Call, cluster: str) -> str:
        return "old" if cluster == call.view.old else "new"

    # -- the operations -------------------------------------------------------------------

    def id_for(self, run: Callable[..., Awaitable[Any]], task_identifier: str) -> str:
        """The deterministic ID of `task_identifier`'s run of the workflow `run` belongs to."""
        return workflow_id(_definition(run).name or "", task_identifier)

    def _creator(
        self,
        run: Callable[..., Awaitable[Any]],
        arg: Any,
        task_identifier: str,
        task_queue: str | None,
        reuse: WorkflowIDReusePolicy,
        kwargs: dict[str, Any],
    ) -> tuple[str, str, Callable[[Client], Awaitable[WorkflowHandle[Any, Any]]]]:
        """Type, ID and the start-or-join call for one cluster, with haul's ID policies."""
        defn = _definition(run)
        wf_type = defn.name or ""
        wf_id = workflow_id(wf_type, task_identifier)
        queue = task_queue_for(defn.cls, task_queue)

        async def create(client: Client) -> WorkflowHandle[Any, Any]:
            return await client.start_workflow(
                run,
                arg,
                id=wf_id,
                task_queue=queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=reuse,
                rpc_timeout=self._rpc_timeout(),
                **kwargs,
            )

        return wf_type, wf_id, create

    async def start(
        self,
        run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
        arg: ParamType,
        task_identifier: str,
        *,
        task_queue: str | None = None,
        execution_timeout: timedelta | None = None,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """Start a task workflow, or join the run already open under its ID on either cluster.

        A task that succeeded raises WorkflowAlreadyStartedError, wherever it ran.
        """
        wf_type, wf_id, create = self._creator(
            run,
            arg,
            task_identifier,
            task_queue,
            WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            {"execution_timeout": execution_timeout},
        )
        async with self._call("start") as call:
            return await self._place(call, run, wf_id, wf_type, create, join=None, task=True)

    async def signal_with_start(
        self,
        run: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
        arg: ParamType,
        entity_key: str,
        signal: MethodSyncOrAsyncSingleParam[SelfType, SignalArg, None],
        signal_arg: SignalArg,
        *,
        task_queue: str | None = None,
    ) -> WorkflowHandle[SelfType, ReturnType]:
        """Signal an entity where it is open, or start a new run with the signal."""
        name = wf._SignalDefinition.must_name_from_fn_or_str(signal)
        wf_type, wf_id, create = self._creator(
            run,
            arg,
            entity_key,
            task_queue,
            WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            {"start_signal": name, "start_signal_args": [signal_arg]},
        )

        async def join(handle: WorkflowHandle[Any, Any]) -> None:
            await handle.signal(name, signal_arg, rpc_timeout=self._rpc_timeout())

        async with self._call("signal_with_start") as call:
            return await self._place(
                call, run, wf_id, wf_type, create, join=join, task=False, resume=(name, signal_arg)
            )

    async def redrive(
        self, workflow_type: str, args: Sequence[Any], wf_id: str, task_queue: str
    ) -> WorkflowHandle[Any, Any]:
        """Start a failed task again by its recorded type, ID and arguments (a redrive).

        Placed like `start`; a run open anywhere, or a success, raises
        WorkflowAlreadyStartedError instead of being joined, as the failure store expects.
        """

        async def create(client: Client) -> WorkflowHandle[Any, Any]:
            return await client.start_workflow(
                workflow_type,
                args=list(args),
                id=wf_id,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
                rpc_timeout=self._rpc_timeout(),
            )

        async def refuse(handle: WorkflowHandle[Any, Any]) -> None:
            raise WorkflowAlreadyStartedError(wf_id, workflow_type)

        async with self._call("redrive") as call:
            # Not from the cache: a redrive may name a child, whose parent can start it again.
            call.cache_gen = None
            return await self._place(
                call, None, wf_id, workflow_type, create, join=refuse, task=True
            )

    async def _place(
        self,
        call: _Call,
        run: Callable[..., Awaitable[Any]] | None,
        wf_id: str,
        wf_type: str,
        create: Callable[[Client], Awaitable[WorkflowHandle[Any, Any]]],
        join: Callable[[WorkflowHandle[Any, Any]], Awaitable[None]] | None,
        task: bool,
        resume: tuple[str, Any] | None = None,
    ) -> WorkflowHandle[Any, Any]:
        """Put a new run (or join an open one) where the current step says; see the docstring.

        `resume` is the signal of a signal-with-start: when the look-up found the ID closed and
        a handoff of it waits to be resumed, the continuation starts with that signal instead
        of a fresh run."""
        view = call.view
        if view.phase in (Phase.SINGLE, Phase.DUAL):
            await self._decided(call, wf_id, view.old)
            return await create(self.clients[view.old])
        assert view.new is not None
        conn = None
        if view.step in _LOCKED:
            assert self.store is not None
            conn = await self._lock_id(wf_id)
            self._query(call, "lock")
        try:
            if view.step is Step.GUARD:
                assert conn is not None and self.store is not None
                claimed = await self._db(self.store.claimed_cluster, conn, wf_id)
                self._query(call, "claim-read")
                target = view.new if claimed == view.new else view.old
                await self._decided(call, wf_id, target)
                return await create(self.clients[target])
            known = self.cache.get(call.cache_gen, wf_id)
            if known is not None:
                # Final on old (see lookup_cache): no describe.
                self.stats.cache_hits[(call.stage, call.op)] += 1
                if known.answer is OldAnswer.SUCCEEDED and task:
                    await self._decided(call, wf_id, view.old)
                    raise WorkflowAlreadyStartedError(wf_id, wf_type, run_id=known.run_id)
                await self._decided(call, wf_id, view.new)
                return await create(self.clients[view.new])
            look = (
                [view.old, view.new] if view.step in (Step.BOTH_NEW, Step.BOTH_OLD) else [view.old]
            )
            # A run that closed as handed off (its memo says so), or one that closed between the
            # look-up and the signal: its continuation may be waiting in the handoff table.
            maybe_handed_off = False
            for cluster in look:
                desc = await self._describe(call, cluster, wf_id)
                self._remember(call, wf_id, desc)
                if desc is None:
                    continue
                maybe_handed_off = desc.status != WorkflowExecutionStatus.RUNNING and (
                    HANDED_OFF_MEMO in desc.raw_description.workflow_execution_info.memo.fields
                )
                client = self.clients[cluster]
                if desc.status == WorkflowExecutionStatus.RUNNING:
                    await self._decided(call, wf_id, cluster)
                    # No run ID: a run that continued as new is followed, never re-created.
                    handle = (
                        client.get_workflow_handle(wf_id)
                        if run is None
                        else client.get_workflow_handle_for(run, wf_id)
                    )
                    if join is None:
                        return handle
                    try:
                        await join(handle)
                        return handle
                    except RPCError as err:
                        if not _not_found(err):
                            raise
                        # It closed between the look-up and the signal: start it afresh.
                        self._extra(call, f"signal-{self._role(call, cluster)}-closed")
                        maybe_handed_off = True
                        break
                if desc.status == WorkflowExecutionStatus.COMPLETED and task:
                    await self._decided(call, wf_id, cluster)
                    raise WorkflowAlreadyStartedError(wf_id, wf_type, run_id=desc.run_id)
            if maybe_handed_off and resume is not None:
                resumed = await self._resume(call, wf_id, conn, resume)
                if resumed is not None:
                    return resumed
            target = view.old if view.step is Step.BOTH_OLD else view.new
            if view.step is Step.CLAIM:
                assert conn is not None and self.store is not None
                await self._db(self.store.claim, conn, wf_id, target, view.version)
                self._query(call, "claim-write")
            await self._decided(call, wf_id, target)
            return await create(self.clients[target])
        finally:
            if conn is not None:
                await self._unlock_id(conn, wf_id)
                self._query(call, "unlock")

    def _remember(
        self, call: _Call, wf_id: str, desc: WorkflowExecutionDescription | None
    ) -> None:
        """Cache what a look-up on old found, when it is final: absent, or closed with no
        handoff to resume and no parent that could start it again. Never an open run."""
        if call.cache_gen is None:
            return
        if desc is None:
            self.cache.put(call.cache_gen, wf_id, GONE)
            return
        if desc.status == WorkflowExecutionStatus.RUNNING or desc.parent_id:
            return
        if HANDED_OFF_MEMO in desc.raw_description.workflow_execution_info.memo.fields:
            return
        if desc.status == WorkflowExecutionStatus.COMPLETED:
            self.cache.put(call.cache_gen, wf_id, Entry(OldAnswer.SUCCEEDED, desc.run_id))
        else:
            self.cache.put(call.cache_gen, wf_id, GONE)

    async def resume_handoff(self, wf_id: str) -> WorkflowHandle[Any, Any] | None:
        """Start a handed-off workflow's continuation on its new cluster, once; None when there
        is nothing to resume (no handoff, or it was resumed already). The caller has seen the
        old run closed (the resumer workflow checks before it calls)."""
        async with self._call("resume") as call:
            return await self._resume(call, wf_id, None, None)

    async def _resume(
        self,
        call: _Call,
        wf_id: str,
        conn: psycopg.Connection[Any] | None,
        signal: tuple[str, Any] | None,
    ) -> WorkflowHandle[Any, Any] | None:
        """Under the ID's lock (the caller's, or taken here): start the continuation with the
        final snapshot, with `signal` as its start signal; see handoff_store."""
        if self.handoffs is None:
            return None
        handoffs = self.handoffs
        waiting = await self._db(handoffs.waiting, wf_id)
        self._query(call, "handoff-read")
        if not waiting:
            return None
        own = conn is None
        if conn is None:
            conn = await self._lock_id(wf_id)
            self._query(call, "lock")
        try:
            row = await self._db(handoffs.row, conn, wf_id)
            self._query(call, "handoff-read")
            if row is None:
                return None
            client = self.clients[row.to_cluster]
            latest = await self._describe(call, row.to_cluster, wf_id)
            latest_run = latest.run_id if latest is not None else ""
            step = resume_step(row, latest_run)
            if step is ResumeStep.STARTED:
                await self._db(handoffs.mark_resumed, conn, wf_id, latest_run)
                self._query(call, "handoff-write")
            if step is not ResumeStep.START:
                return None
            snapshot = await self._db(handoffs.begin_resume, conn, wf_id, latest_run)
            self._query(call, "handoff-write")
            await self._decided(call, wf_id, row.to_cluster)
            extra: dict[str, Any] = {}
            if signal is not None:
                extra = {"start_signal": signal[0], "start_signal_args": [signal[1]]}
            handle = await client.start_workflow(
                row.workflow_type,
                snapshot,
                id=wf_id,
                task_queue=row.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                rpc_timeout=self._rpc_timeout(),
                **extra,
            )
            self._extra(call, "handoff-resume")
            await self._db(handoffs.mark_resumed, conn, wf_id, handle.result_run_id or "")
            self._query(call, "handoff-write")
            log.info("resumed handoff of %s on %s", wf_id, row.to_cluster)
            return handle
        finally:
            if own:
                await self._unlock_id(conn, wf_id)
                self._query(call, "unlock")

    async def _describe(
        self, call: _Call, cluster: str, wf_id: str
    ) -> WorkflowExecutionDescription | None:
        self._extra(call, f"describe-{self._role(call, cluster)}")
        try:
            return (
                await self.clients[cluster]
                .get_workflow_handle(wf_id)
                .describe(rpc_timeout=self._rpc_timeout())
            )
        except RPCError as err:
            if _not_found(err):
                return None
            raise

    def _search_order(self, view: MigrationState) -> list[str]:
        """Where an existing run may be, most likely first."""
        if view.phase in (Phase.SINGLE, Phase.DUAL) or view.new is None:
            return [view.old]
        if view.phase is Phase.DRAINED:
            return [view.new, view.old]
        return [view.old, view.new]

    async def _on_open_run(
        self,
        call: _Call,
        wf_id: str,
        act: Callable[[WorkflowHandle[Any, Any]], Awaitable[T]],
    ) -> T:
        """Act on the ID where its run is open; an act that finds it closed tries the next."""
        order = self._search_order(call.view)
        for i, cluster in enumerate(order):
            if i:
                self._extra(call, f"{call.op}-{self._role(call, cluster)}")
            try:
                return await act(self.clients[cluster].get_workflow_handle(wf_id))
            except RPCError as err:
                if not _not_found(err) or i == len(order) - 1:
                    raise
        raise AssertionError("unreachable: the search order is never empty")

    async def signal(
        self,
        run: MethodAsyncSingleParam[SelfType, Any, Any],
        task_identifier: str,
        signal: MethodSyncOrAsyncSingleParam[SelfType, SignalArg, None],
        arg: SignalArg,
    ) -> None:
        """Signal the open run of a workflow by its deterministic ID."""
        wf_id = self.id_for(run, task_identifier)
        async with self._call("signal") as call:
            try:
                await self._on_open_run(
                    call, wf_id, lambda h: h.signal(signal, arg, rpc_timeout=self._rpc_timeout())
                )
            except RPCError as err:
                # Closed everywhere: a handed-off run whose continuation has not started yet
                # takes the signal as its start signal.
                name = wf._SignalDefinition.must_name_from_fn_or_str(signal)
                if not _not_found(err) or not await self._resume(call, wf_id, None, (name, arg)):
                    raise

    async def cancel(
        self, run: MethodAsyncSingleParam[SelfType, Any, Any], task_identifier: str
    ) -> None:
        """Request cancellation of the open run of a workflow by its deterministic ID."""
        wf_id = self.id_for(run, task_identifier)
        async with self._call("cancel") as call:
            await self._on_open_run(
                call, wf_id, lambda h: h.cancel(rpc_timeout=self._rpc_timeout())
            )

    async def query(
        self,
        run: MethodAsyncSingleParam[SelfType, Any, Any],
        task_identifier: str,
        query: MethodSyncOrAsyncNoParam[SelfType, QueryResult],
    ) -> QueryResult:
        """Query the run of a workflow by ID: the open one, else the latest closed one."""
        wf_id = self.id_for(run, task_identifier)
        async with self._call("query") as call:
            _, handle = await self._locate(call, wf_id)
            return await handle.query(query, rpc_timeout=self._rpc_timeout())

    async def handle(
        self, run: MethodAsyncSingleParam[SelfType, Any, ReturnType], task_identifier: str
    ) -> tuple[str, WorkflowHandle[SelfType, ReturnType]]:
        """The cluster that holds the ID now (open there, else its latest closed run)."""
        wf_id = self.id_for(run, task_identifier)
        async with self._call("handle") as call:
            cluster, _ = await self._locate(call, wf_id)
            return cluster, self.clients[cluster].get_workflow_handle_for(run, wf_id)

    async def _locate(self, call: _Call, wf_id: str) -> tuple[str, WorkflowHandle[Any, Any]]:
        order = self._search_order(call.view)
        if len(order) == 1:
            return order[0], self.clients[order[0]].get_workflow_handle(wf_id)
        found: str | None = None
        for cluster in order:
            desc = await self._describe(call, cluster, wf_id)
            if desc is None:
                continue
            if desc.status == WorkflowExecutionStatus.RUNNING:
                return cluster, self.clients[cluster].get_workflow_handle(wf_id)
            found = found or cluster
        # Closed everywhere (or nowhere): the most likely cluster answers, as the SDK would.
        cluster = found or order[0]
        return cluster, self.clients[cluster].get_workflow_handle(wf_id)
