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
from pathlib import Path

from pydantic import BaseModel

from app.domains.loadgen.models import NoopInput
from app.domains.loadgen.workflows import NoopActivityWorkflow
from app.loadtest.models import RunReport
from app.platform.actions import ActionReader, delta
from app.platform.client import HaulClient


class CeilingResult(BaseModel):
    """What the bare driver reached in one run."""

    workflows: int
    failures: int
    seconds: float
    wf_per_s: float
    actions: dict[str, int]
    actions_per_s: float
    p50_ms: float
    p95_ms: float


class CeilingRound(BaseModel):
    """One bare run and the harness run after it, on the same server."""

    ceiling: CeilingResult
    harness_wf_per_s: float
    harness_actions_per_s: float
    ratio: float
    harness_report: Path

    @classmethod
    def of(cls, bare: CeilingResult, harness: RunReport) -> CeilingRound:
        wf_per_s = harness.summary.operations_per_s
        return cls(
            ceiling=bare,
            harness_wf_per_s=wf_per_s,
            harness_actions_per_s=harness.summary.actions_per_s,
            ratio=wf_per_s / bare.wf_per_s if bare.wf_per_s else 0.0,
            harness_report=Path(harness.files.report_json),
        )


class CeilingSummary(BaseModel):
    """ceiling.json: every round, and the median of their ratios."""

    rounds: list[CeilingRound]
    ratio: float


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


def diagnose(ceiling: CeilingResult, locust: RunReport) -> list[str]:
    """Where the Locust harness loses time against the bare driver, from what both measured."""
    notes = []
    harness = locust.harness
    lag = harness.submit_lag_p95_ms + harness.wake_lag_p95_ms
    notes.append(
        f"bridge overhead (p95 submit lag + p95 wake lag): {lag:.2f} ms per call, against a "
        f"p50 of {ceiling.p50_ms:.1f} ms per workflow"
    )
    cpu = harness.cpu_seconds
    dur = locust.duration_s
    if harness.processes and dur:
        notes.append(
            f"Locust process CPU: {cpu:.1f} s over {dur:.1f} s ({cpu / dur:.0%} of one core), "
            "competing with the server and the worker on the same cores"
        )
    p50 = locust.summary.p50_ms
    if p50 is not None:
        notes.append(f"latency p50: harness {p50} ms, bare driver {ceiling.p50_ms:.1f} ms")
    return notes
