"""The same workload on the dev, Postgres and Cassandra stacks, in one run.

For each backend it boots a local cluster with `haul stack up`, starts in-process sample
workers, runs N GreetingWorkflows (one activity each) with a fixed number in flight, and prints
billable actions per second (from that server's `action` counter, through the shared
ActionReader) and p50/p95 workflow latency (start call to result). It then checks each server's
count by type against the histories of the runs it started (as `haul loadtest` does) and that
every workflow ran; any mismatch makes the exit code 1.

    python -m loadtest.bench_backends --workflows 300 --concurrency 20
    python -m loadtest.bench_backends --backends dev --workflows 5 --concurrency 2   # short

Clusters are named bench-<backend> and purged afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from rich.console import Console
from rich.table import Table

from app.loadtest import accounting

BACKENDS = ("dev", "postgres", "cassandra")


@dataclass
class Result:
    backend: str
    workflows: int
    elapsed: float
    actions: dict[str, int]
    latencies: list[float]
    # What the measured runs' histories explain, and how many workflow IDs they hold.
    history: dict[str, int] = field(default_factory=dict)
    history_workflows: int = 0

    @property
    def total_actions(self) -> int:
        return sum(self.actions.values())

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def problems(self) -> list[str]:
        """What disagrees: the server's count against the histories, and workflows found."""
        rows = accounting.compare(self.actions, self.history, {})
        out = [f"{self.backend}: {line}" for line in accounting.problems(rows)]
        if self.history_workflows != self.workflows:
            out.append(
                f"{self.backend}: {self.workflows} workflows ran, histories hold "
                f"{self.history_workflows}"
            )
        return out


async def _workload(backend: str, name: str, workflows: int, concurrency: int) -> Result:
    from app.core.settings import Settings
    from app.domains.sample import DOMAIN
    from app.domains.sample.models import GreetingInput
    from app.domains.sample.workflows import GreetingWorkflow
    from app.platform.actions import ActionReader
    from app.platform.client import HaulClient, connect
    from app.platform.discovery import discover
    from app.platform.worker import build_workers
    from app.stack import targets
    from app.stack.registry import Registry

    rec = Registry().get(name)
    assert rec is not None
    target = targets.for_cluster(rec)
    client = await connect(target.profile, config_file=target.config_file)
    workers = build_workers(
        client,
        discover(["app.domains.sample"]),
        Settings(graceful_shutdown_seconds=5),
        [DOMAIN.task_queue],
    )
    runs = [asyncio.create_task(w.run()) for w in workers]
    haul = HaulClient(client)
    reader = ActionReader(rec.metrics_url, target.namespace)
    # Warm-up IDs get their own prefix, so the measured runs' tag finds only measured runs.
    run = uuid.uuid4().hex[:8]
    tag = uuid.uuid4().hex[:12]
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            t0 = time.perf_counter()
            handle = await haul.start(
                GreetingWorkflow.run, GreetingInput(name=f"b{i}"), f"{run}-{i}"
            )
            await handle.result()
            latencies.append(time.perf_counter() - t0)

    try:
        # Warm up (first workflow task, namespace caches) outside the measured window.
        await asyncio.gather(*(one(-1 - i) for i in range(min(concurrency, 10))))
        latencies.clear()
        baseline = await reader.measure_start()
        since = datetime.now(UTC) - timedelta(seconds=2)
        run = tag
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(workflows)))
        elapsed = time.perf_counter() - started
        counted = await reader.measure_end(baseline)
        tally = await accounting.tally_runs(client, tag, since)
    finally:
        await asyncio.gather(*(w.shutdown() for w in workers), return_exceptions=True)
        await asyncio.gather(*runs, return_exceptions=True)
    return Result(
        backend, workflows, elapsed, counted, latencies, tally.by_type, tally.workflow_ids
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=300, help="workflows per backend")
    parser.add_argument("--concurrency", type=int, default=20, help="workflows in flight")
    parser.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated")
    parser.add_argument("--keep", action="store_true", help="leave the clusters running")
    args = parser.parse_args(argv)

    from app.stack import cluster

    console = Console(width=130)
    results: list[Result] = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        name = f"bench-{backend}"
        with console.status(f"starting {name} ..."):
            boot = time.perf_counter()
            cluster.up(name, backend, headless=True, timeout=240)
            boot = time.perf_counter() - boot
        console.print(f"{name} up in {boot:.1f}s; running {args.workflows} workflows")
        try:
            results.append(asyncio.run(_workload(backend, name, args.workflows, args.concurrency)))
        finally:
            if not args.keep:
                cluster.down(name, purge=True)

    table = Table(
        "backend",
        "workflows",
        "seconds",
        "billable actions",
        "actions/s",
        "workflows/s",
        "p50 ms",
        "p95 ms",
        title=f"GreetingWorkflow x{args.workflows}, {args.concurrency} in flight, "
        f"{os.cpu_count()} CPUs",
    )
    for r in results:
        table.add_row(
            r.backend,
            str(r.workflows),
            f"{r.elapsed:.1f}",
            str(r.total_actions),
            f"{r.total_actions / r.elapsed:.1f}",
            f"{r.workflows / r.elapsed:.1f}",
            f"{statistics.median(r.latencies) * 1000:.0f}",
            f"{r.quantile(0.95) * 1000:.0f}",
        )
    console.print(table)
    for r in results:
        console.print(f"{r.backend}: {r.actions}")
    bad = [line for r in results for line in r.problems()]
    for line in bad:
        console.print(f"[red]{line}[/red]", highlight=False)
    if not bad:
        console.print("[green]server counts match the histories on every backend[/green]")
    return 1 if bad else 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter teardown: grpcio can abort there after a temporalio client (exit 134).
    os._exit(code)
