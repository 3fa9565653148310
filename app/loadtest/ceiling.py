"""The ceiling: start_and_complete driven by bare asyncio temporalio, no Locust.

N coroutines on one client each start NoopActivityWorkflow and await its result, in a closed
loop, for the duration. The wf/s it reaches is what this server, worker and machine can do;
the Locust harness is then judged as a ratio of it (target >= 0.9).
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from app.domains.loadgen.models import NoopInput
from app.domains.loadgen.workflows import NoopActivityWorkflow
from app.platform.actions import ActionReader, delta
from app.platform.client import HaulClient


@dataclass
class CeilingResult:
    workflows: int
    failures: int
    seconds: float
    wf_per_s: float
    actions: dict[str, int]
    actions_per_s: float
    p50_ms: float
    p95_ms: float


async def drive(
    client: HaulClient,
    *,
    duration: float,
    concurrency: int,
    reader: ActionReader | None = None,
    quiet_timeout: float = 120.0,
    sample_interval: float = 1.0,
) -> CeilingResult:
    tag = f"ceil{uuid.uuid4().hex[:10]}"
    seq = itertools.count()
    latencies: list[float] = []
    failures = 0
    baseline = await reader.wait_quiet(timeout=quiet_timeout) if reader else None
    start = time.perf_counter()
    stop_at = start + duration

    async def loop() -> None:
        nonlocal failures
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            try:
                handle = await client.start(
                    NoopActivityWorkflow.run, NoopInput(tag=tag), f"{tag}-{next(seq)}"
                )
                await handle.result()
            except Exception:
                failures += 1
                continue
            latencies.append(time.perf_counter() - t)

    # Sample the action counter as the Locust run does, so both pay the same scrape cost.
    stop = asyncio.Event()
    sampler = asyncio.create_task(reader.sample(stop, sample_interval)) if reader else None
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    seconds = time.perf_counter() - start
    stop.set()
    if sampler:
        await sampler
    actions: dict[str, int] = {}
    if reader and baseline is not None:
        actions = delta(baseline, await reader.wait_quiet(timeout=quiet_timeout))
    ordered = sorted(latencies)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else 0.0

    return CeilingResult(
        workflows=len(latencies),
        failures=failures,
        seconds=seconds,
        wf_per_s=len(latencies) / seconds,
        actions=actions,
        actions_per_s=sum(actions.values()) / seconds,
        p50_ms=statistics.median(ordered) * 1000 if ordered else 0.0,
        p95_ms=pct(0.95),
    )


def diagnose(ceiling: CeilingResult, harness: dict[str, Any], locust: dict[str, Any]) -> list[str]:
    """Where the Locust harness loses time against the bare driver, from what both measured."""
    notes = []
    lag = harness.get("submit_lag_p95_ms", 0) + harness.get("wake_lag_p95_ms", 0)
    notes.append(
        f"bridge overhead (p95 submit lag + p95 wake lag): {lag:.2f} ms per call, against a "
        f"p50 of {ceiling.p50_ms:.1f} ms per workflow"
    )
    cpu = harness.get("cpu_seconds")
    dur = locust.get("duration_s") or 0
    if cpu is not None and dur:
        notes.append(
            f"Locust process CPU: {cpu:.1f} s over {dur:.1f} s ({cpu / dur:.0%} of one core), "
            "competing with the server and the worker on the same cores"
        )
    p50 = locust.get("summary", {}).get("p50_ms")
    if p50 is not None:
        notes.append(f"latency p50: harness {p50} ms, bare driver {ceiling.p50_ms:.1f} ms")
    return notes
