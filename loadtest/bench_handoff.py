"""Handoff under load on two dev clusters: what it costs and how long it takes.

Boots two dev clusters (bench-ho-old, bench-ho-new), serves the sample domain on both with
in-process workers that follow the migration state, opens E ledger entities on the old cluster
and keeps signal-with-starting events to them from S senders through a router, walks the
migration to `draining`, then asks every entity to hand off (as `haul migrate handoff` does).

It prints signal-with-start p50/p95 latency and the router's extra RPCs and database queries per
call in three windows (before routing, draining before the handoff, during the handoff), the
time from the requests to the last continuation started, and how many handed off. It then reads
every run's history on both clusters: any event ID processed other than exactly once, or a
handoff not resumed, makes the exit code 1.

    python -m loadtest.bench_handoff --entities 40 --senders 8 --seconds 4
    python -m loadtest.bench_handoff --entities 5 --senders 2 --seconds 2     # short
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections import Counter
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

from rich.console import Console
from rich.table import Table
from temporalio.client import Client, WorkflowExecutionStatus

from app.core.settings import Settings
from app.domains.sample import DOMAIN
from app.domains.sample.models import LedgerBatch
from app.domains.sample.workflows import LedgerEntityWorkflow
from app.platform.client import HaulClient
from app.platform.discovery import discover
from app.platform.handoff_control import HandoffRefusedError, opted_in_types, request_handoff
from app.platform.handoff_models import HandoffRequest
from app.platform.handoff_store import HandoffStore
from app.platform.history import run_ids, scheduled_activity_inputs
from app.platform.migration_state import MigrationStore
from app.platform.phases import Action
from app.platform.retry_on_signal import EntityEvent, EntityInput
from app.platform.router import ClusterRouter, RouterStats
from app.platform.worker import build_workers
from app.stack import cluster
from app.stack.registry import ClusterRecord
from loadtest.migration_setup import cluster_clients, fresh_store

OLD, NEW = "bench-ho-old", "bench-ho-new"
SAMPLE = discover(["app.domains.sample"])


@dataclass
class Window:
    """Signal-with-starts sent in one stretch of the run."""

    name: str
    latencies: list[float] = field(default_factory=list)
    stats: RouterStats = field(default_factory=RouterStats)

    def row(self) -> list[str]:
        calls = sum(self.stats.calls.values())
        lat = sorted(self.latencies) or [0.0]
        p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))]
        return [
            self.name,
            str(len(self.latencies)),
            f"{statistics.median(lat) * 1000:.1f}",
            f"{p95 * 1000:.1f}",
            f"{sum(self.stats.extra_rpcs.values()) / max(calls, 1):.2f}",
            f"{sum(self.stats.db_queries.values()) / max(calls, 1):.2f}",
            f"{sum(self.stats.cache_hits.values()) / max(calls, 1):.2f}",
        ]


def _delta(after: RouterStats, before: RouterStats) -> RouterStats:
    return RouterStats(
        calls=after.calls - before.calls,
        extra_rpcs=after.extra_rpcs - before.extra_rpcs,
        db_queries=after.db_queries - before.db_queries,
        cache_hits=after.cache_hits - before.cache_hits,
    )


def _copy(stats: RouterStats) -> RouterStats:
    return RouterStats(
        Counter(stats.calls),
        Counter(stats.extra_rpcs),
        Counter(stats.db_queries),
        Counter(stats.cache_hits),
    )


async def _step(store: MigrationStore, action: Action, **kw: str) -> None:
    state = await asyncio.to_thread(
        lambda: store.announce(action, actor="bench", reason="bench_handoff", **kw)  # type: ignore[arg-type]
    )
    while not await asyncio.to_thread(store.in_effect, state.version):
        await asyncio.sleep(0.1)


async def _processed(client: Client, wf_id: str) -> Counter[str]:
    seen: Counter[str] = Counter()
    for run in await run_ids(client, wf_id):
        for batch in await scheduled_activity_inputs(
            client, wf_id, run, "process_ledger_batch", LedgerBatch
        ):
            seen.update(batch.event_ids)
    return seen


async def bench(
    recs: dict[str, ClusterRecord], entities: int, senders: int, seconds: float, work: float
) -> int:
    console = Console()
    store = fresh_store(recs[OLD].dsn())
    clients = await cluster_clients(recs)
    async with AsyncExitStack() as stack:
        worker_router = await stack.enter_async_context(
            ClusterRouter(clients, store, cluster=OLD, refresh_seconds=0.2)
        )
        workers = [
            w
            for c in clients.values()
            for w in build_workers(
                c, SAMPLE, Settings(), [DOMAIN.task_queue], haul=HaulClient(worker_router)
            )
        ]
        runs = [asyncio.create_task(w.run()) for w in workers]
        sender = await stack.enter_async_context(
            ClusterRouter(clients, store, cluster=OLD, refresh_seconds=0.2)
        )
        keys = [f"bench-{time.time_ns()}-{i}" for i in range(entities)]
        ids = {k: sender.id_for(LedgerEntityWorkflow.run, k) for k in keys}
        sent: dict[str, list[str]] = {k: [] for k in keys}
        windows = [Window("single"), Window("draining"), Window("handoff")]
        current = [windows[0]]
        stop = asyncio.Event()

        async def send_loop(lane: int) -> None:
            rng = random.Random(lane)
            n = 0
            while not stop.is_set():
                key = rng.choice(keys)
                n += 1
                event_id = f"{lane}-{n}"
                began = time.monotonic()
                await sender.signal_with_start(
                    LedgerEntityWorkflow.run,
                    EntityInput(entity_key=key, state={"work_seconds": work}),
                    key,
                    LedgerEntityWorkflow.on_event,
                    EntityEvent(event_id),
                )
                current[0].latencies.append(time.monotonic() - began)
                sent[key].append(event_id)

        lanes = [asyncio.create_task(send_loop(i)) for i in range(senders)]
        mark = _copy(sender.stats)
        await asyncio.sleep(seconds)
        windows[0].stats = _delta(sender.stats, mark)
        await _step(store, Action.START, old_cluster=OLD, new_cluster=NEW)
        for action in (Action.ROUTE, Action.ROUTE, Action.ROUTE, Action.DRAIN):
            await _step(store, action)
        current[0], mark = windows[1], _copy(sender.stats)
        await asyncio.sleep(seconds)
        windows[1].stats = _delta(sender.stats, mark)
        current[0], mark = windows[2], _copy(sender.stats)
        asked = time.monotonic()
        opted = opted_in_types(SAMPLE)
        request = HandoffRequest(OLD, NEW, "bench")
        accepted = refused = 0
        for key in keys:
            try:
                await request_handoff(clients[OLD], ids[key], request, opted_in=opted)
                accepted += 1
            except HandoffRefusedError:
                refused += 1  # completed between batches: nothing to hand off
        handoffs = HandoffStore(store.db)
        while await asyncio.to_thread(handoffs.unresumed, OLD) or await _open(clients[OLD]):
            await asyncio.sleep(0.05)
        resumed_in = time.monotonic() - asked
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.gather(*lanes)
        windows[2].stats = _delta(sender.stats, mark)
        problems = await _check(clients, ids, sent)
        counts = await asyncio.to_thread(handoffs.counts, OLD)
        for w in workers:
            await w.shutdown()
        await asyncio.gather(*runs, return_exceptions=True)

    table = Table(
        "window",
        "sends",
        "p50 ms",
        "p95 ms",
        "extra RPCs/call",
        "db queries/call",
        "cache hits/call",
        title=f"signal-with-start, {entities} entities, {senders} senders, {work}s per batch",
    )
    for w in windows:
        table.add_row(*w.row())
    console.print(table)
    console.print(
        f"handoff: {accepted} asked ({refused} had just completed), "
        f"{sum(counts.values())} handed off, all resumed and {OLD!r} empty "
        f"{resumed_in:.2f}s after the first request"
    )
    events = sum(len(v) for v in sent.values())
    console.print(f"ledger: {events} events to {entities} entities checked on both clusters")
    for p in problems:
        console.print(f"[red]{p}[/red]")
    store.db.close()
    return 1 if problems else 0


async def _open(client: Client) -> int:
    return (await client.count_workflows("ExecutionStatus = 'Running'")).count


async def _check(
    clients: dict[str, Client], ids: dict[str, str], sent: dict[str, list[str]]
) -> list[str]:
    """Every event ID processed exactly once, once every run has closed."""
    problems = []
    for key, wf_id in ids.items():
        for _ in range(600):
            statuses = [await _status(c, wf_id) for c in clients.values()]
            book = sum([await _processed(c, wf_id) for c in clients.values()], Counter())
            if WorkflowExecutionStatus.RUNNING not in statuses and set(sent[key]) <= set(book):
                break
            await asyncio.sleep(0.1)
        want = Counter(dict.fromkeys(sent[key], 1))
        if book != want:
            lost = sorted(set(want) - set(book))
            twice = sorted(e for e, n in book.items() if n > 1)
            problems.append(f"{wf_id}: lost {lost[:5]}, twice {twice[:5]}")
    return problems


async def _status(client: Client, wf_id: str) -> WorkflowExecutionStatus | None:
    try:
        return (await client.get_workflow_handle(wf_id).describe()).status
    except Exception:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=40)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each window")
    parser.add_argument("--work", type=float, default=0.3, help="seconds per entity batch")
    args = parser.parse_args()
    recs: dict[str, ClusterRecord] = {}
    try:
        for name in (OLD, NEW):
            recs[name] = cluster.up(name, "dev", headless=True)
        code = asyncio.run(bench(recs, args.entities, args.senders, args.seconds, args.work))
    finally:
        for name in recs:
            cluster.down(name, purge=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
