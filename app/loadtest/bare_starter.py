"""The bare asyncio starter: start_and_complete with plain temporalio, no Locust, in its own
process so its CPU is its own.

`python -m app.loadtest.bare_starter --concurrency N --duration S --tag T --out FILE` keeps N
NoopActivityWorkflows in flight on one client (start, await the result, start the next) for S
seconds, and writes a StarterResult (the Go starter writes the same JSON). `--task-queue`
sends them to another worker of the same names (the Go reference's, for the ceiling's cross
pairings). The connection
comes from envconfig (TEMPORAL_* variables), as the Locust processes' does.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import resource
import sys
import time
from pathlib import Path

from app.core.target import Target
from app.domains.loadgen.models import NoopInput
from app.domains.loadgen.workflows import NoopActivityWorkflow
from app.loadtest.models import StarterResult
from app.platform.client import HaulClient


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def drive(
    client: HaulClient,
    *,
    concurrency: int,
    duration: float,
    tag: str,
    task_queue: str | None = None,
) -> StarterResult:
    """N closed loops of start-and-wait for `duration` seconds."""
    seq = itertools.count(1)
    latencies: list[float] = []
    done_at: list[float] = []
    failures = 0
    first_error: str | None = None
    cpu0, start = _cpu(), time.perf_counter()
    stop_at = start + duration

    async def loop() -> None:
        nonlocal failures, first_error
        while time.perf_counter() < stop_at:
            t = time.perf_counter()
            try:
                handle = await client.start(
                    NoopActivityWorkflow.run,
                    NoopInput(tag=tag),
                    f"{tag}-{next(seq)}",
                    task_queue=task_queue,
                )
                await handle.result()
            except Exception as exc:  # counted, and the first one reported
                failures += 1
                first_error = first_error or f"{type(exc).__name__}: {exc}"
                continue
            now = time.perf_counter()
            latencies.append((now - t) * 1000)
            done_at.append(now - start)

    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return StarterResult(
        workflows=len(latencies),
        failures=failures,
        seconds=time.perf_counter() - start,
        latency_ms=latencies,
        done_at_s=done_at,
        cpu_seconds=_cpu() - cpu0,
        first_error=first_error,
    )


async def _main(
    concurrency: int, duration: float, tag: str, task_queue: str | None
) -> StarterResult:
    client = await HaulClient.connect(Target())
    return await drive(
        client, concurrency=concurrency, duration=duration, tag=tag, task_queue=task_queue
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m app.loadtest.bare_starter")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--tag", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--task-queue", help="start on this queue (default: the loadgen domain's own)"
    )
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error(f"--concurrency must be at least 1, got {args.concurrency}")
    result = asyncio.run(_main(args.concurrency, args.duration, args.tag, args.task_queue))
    args.out.write_text(result.model_dump_json())
    # The result is on disk: leave without interpreter teardown, where grpcio can abort a
    # process that used a temporalio client (DESIGN.md, "Abort at interpreter exit").
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
