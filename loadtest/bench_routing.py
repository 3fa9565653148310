"""Routing throughput on two dev clusters: what the old-cluster look-up costs, with and
without the router's look-up cache, in single, routing:lookup and draining.

Boots two dev clusters (bench-rt-old, bench-rt-new) and drives three senders in one process:
a router with the look-up cache, one with it off (`cache_size=0`, how every router worked
before the cache), and the baseline, a client with no migration on the cluster new work goes
to in that window (old in single, new after); `vs one cluster` is throughput over that
baseline's in the same window. No worker runs, so latency is the client-to-server path that
routing adds to (a worker in the same process would compete with the senders for the event
loop); the runs stay open. In each window the three take turns in short slices (the order
rotating), each slice S closed-loop senders doing one operation:

- `swS`: signal-with-start to a pool of entity keys of its own per window (so once routing,
  the entity lives on the new cluster: the cache's case);
- `start`: a task workflow under a fresh ID each call (no cache can spare that look-up);
- `describe`: the look-up alone, a DescribeWorkflowExecution of an absent ID on the old cluster
  (what a routed call adds), measured once per window without a router.

Per window, variant and operation it prints calls a second, p50 and p95 latency, the router's
extra RPCs per call and the share answered by the cache. The machine is shared: compare rows of
one run, never across runs.

    python -m loadtest.bench_routing --senders 8 --slice 3 --rounds 2
    python -m loadtest.bench_routing --senders 4 --slice 1 --rounds 1      # short
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from temporalio.service import RPCError

from app.core.settings import ROUTER_CACHE_SIZE
from app.domains.sample.models import GreetingInput
from app.domains.sample.workflows import GreetingWorkflow, LedgerEntityWorkflow
from app.platform.migration_state import MigrationStore
from app.platform.phases import Action
from app.platform.retry_on_signal import EntityEvent, EntityInput
from app.platform.router import ClusterRouter
from app.stack import cluster
from app.stack.registry import ClusterRecord
from loadtest.migration_setup import cluster_clients, fresh_store

OLD, NEW = "bench-rt-old", "bench-rt-new"
OPS = ("swS", "start")
VARIANTS = ("cache", "no cache", "one cluster")


@dataclass
class Cell:
    """One window, variant and operation, summed over its slices."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    extra_rpcs: int = 0
    hits: int = 0

    def rate(self) -> float:
        return len(self.latencies) / max(self.seconds, 1e-9)

    def row(self) -> list[str]:
        n = len(self.latencies)
        lat = sorted(self.latencies) or [0.0]
        p50 = lat[len(lat) // 2]
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        return [
            str(n),
            f"{self.rate():.1f}",
            f"{p50 * 1000:.1f}",
            f"{p95 * 1000:.1f}",
            f"{self.extra_rpcs / max(n, 1):.2f}",
            f"{self.hits / max(n, 1):.2f}",
        ]


async def _step(store: MigrationStore, action: Action, **kw: str) -> None:
    state = await asyncio.to_thread(
        lambda: store.announce(action, actor="bench", reason="bench_routing", **kw)  # type: ignore[arg-type]
    )
    while not await asyncio.to_thread(store.in_effect, state.version):
        await asyncio.sleep(0.1)


async def _slice(
    router: ClusterRouter, op: str, keys: list[str], senders: int, seconds: float, cell: Cell
) -> None:
    """`senders` closed loops of `op` for `seconds`; what they cost goes into `cell`."""
    rpcs0 = sum(router.stats.extra_rpcs.values())
    hits0 = sum(router.stats.cache_hits.values())
    deadline = time.monotonic() + seconds

    async def lane(i: int) -> None:
        n = 0
        while time.monotonic() < deadline:
            n += 1
            began = time.monotonic()
            if op == "describe":
                with suppress(RPCError):
                    await router.clients[OLD].get_workflow_handle(uuid.uuid4().hex).describe()
            elif op == "swS":
                key = keys[(i * 7919 + n) % len(keys)]
                await router.signal_with_start(
                    LedgerEntityWorkflow.run,
                    EntityInput(entity_key=key),
                    key,
                    LedgerEntityWorkflow.on_event,
                    EntityEvent(uuid.uuid4().hex),
                )
            else:
                await router.start(GreetingWorkflow.run, GreetingInput(name="b"), uuid.uuid4().hex)
            cell.latencies.append(time.monotonic() - began)

    began = time.monotonic()
    await asyncio.gather(*(lane(i) for i in range(senders)))
    cell.seconds += time.monotonic() - began
    cell.extra_rpcs += sum(router.stats.extra_rpcs.values()) - rpcs0
    cell.hits += sum(router.stats.cache_hits.values()) - hits0


async def bench(
    recs: dict[str, ClusterRecord], senders: int, slice_seconds: float, rounds: int, keys: int
) -> None:
    store = fresh_store(recs[OLD].dsn())
    clients = await cluster_clients(recs)
    cells: dict[tuple[str, str, str], Cell] = {}
    async with AsyncExitStack() as stack:
        routers = {
            "cache": await stack.enter_async_context(
                ClusterRouter(
                    clients,
                    store,
                    cluster=OLD,
                    refresh_seconds=0.2,
                    cache_size=ROUTER_CACHE_SIZE,
                )
            ),
            "no cache": await stack.enter_async_context(
                ClusterRouter(clients, store, cluster=OLD, refresh_seconds=0.2, cache_size=0)
            ),
        }
        # The baseline: a client with no migration, on the cluster new work goes to.
        alone = {n: ClusterRouter(clients, None, cluster=n) for n in clients}
        turn = 0

        async def window(name: str, target: str) -> None:
            nonlocal turn
            routers["one cluster"] = alone[target]
            stamp = time.time_ns()
            pools = {v: [f"{name}-{v[:2]}-{i}-{stamp}" for i in range(keys)] for v in VARIANTS}
            for _ in range(rounds):
                for op in OPS:
                    order = VARIANTS[turn % 3 :] + VARIANTS[: turn % 3]
                    turn += 1
                    for v in order:
                        cell = cells.setdefault((name, v, op), Cell())
                        await _slice(routers[v], op, pools[v], senders, slice_seconds, cell)
            cell = cells.setdefault((name, "-", "describe"), Cell())
            await _slice(routers["no cache"], "describe", [], senders, slice_seconds, cell)

        await window("single", OLD)
        await _step(store, Action.START, old_cluster=OLD, new_cluster=NEW)
        for _ in range(3):
            await _step(store, Action.ROUTE)
        await window("routing:lookup", NEW)
        await _step(store, Action.DRAIN)
        await window("draining", NEW)
    store.db.close()

    table = Table(
        "window",
        "router",
        "op",
        "calls",
        "calls/s",
        "p50 ms",
        "p95 ms",
        "extra RPCs/call",
        "cache hits/call",
        "vs one cluster",
        title=f"routing cost, {senders} senders, {rounds} x {slice_seconds}s slices, "
        f"{keys} entity keys (loaded shared machine: compare rows of this run only)",
    )
    order = {"single": 0, "routing:lookup": 1, "draining": 2}
    for (name, v, op), cell in sorted(cells.items(), key=lambda kv: (order[kv[0][0]], kv[0][2:])):
        base = cells.get((name, "one cluster", op))
        ratio = cell.rate() / base.rate() if base and base.rate() else 0.0
        table.add_row(name, v, op, *cell.row(), f"{ratio:.2f}" if op != "describe" else "")
    Console(width=160).print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--slice", type=float, default=3.0, help="seconds per slice")
    parser.add_argument("--rounds", type=int, default=2, help="slices per variant and op")
    parser.add_argument("--keys", type=int, default=20, help="entity keys per pool")
    args = parser.parse_args()
    recs: dict[str, ClusterRecord] = {}
    try:
        for name in (OLD, NEW):
            recs[name] = cluster.up(name, "dev", headless=True)
        asyncio.run(bench(recs, args.senders, args.slice, args.rounds, args.keys))
    finally:
        for name in recs:
            cluster.down(name, purge=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
