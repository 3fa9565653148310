"""Worker CPU per 1,000 workflows, for worker configurations side by side, in one run.

For each round and each variant it starts a `haul worker` process serving only the loadgen
queue (the variant's HAUL_* variables on top of the cluster's), drives `start_and_complete`
(NoopActivityWorkflow, one no-op activity) with N bare asyncio coroutines for the duration,
and reads the worker's CPU (utime + stime from /proc/PID/stat) just before and just after the
drive, so start-up and shutdown are not counted. Variants alternate within each round, so drift
on a shared machine hits them alike; the table gives each variant's median over the rounds.

    python -m loadtest.bench_worker_cpu --target cpu --rounds 3 --duration 20s
    python -m loadtest.bench_worker_cpu --target cpu --variants baseline,tuned --profile out/

With --profile DIR, `py-spy record --format raw --gil` samples each worker during its drive in
an extra round 0, left out of the medians (py-spy's pauses cost the worker CPU), and writes
DIR/<variant>.txt (collapsed stacks); the top frames print after.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from temporalio.worker import Worker

from app.core.procs import stop_pid
from app.domains.loadgen.activities import LoadgenActivities
from app.domains.loadgen.models import NoopInput
from app.domains.loadgen.workflows import NoopActivityWorkflow
from app.loadtest.bare_starter import drive
from app.loadtest.runner import resolve_target
from app.platform.client import HaulClient
from app.stack.registry import Registry
from app.stack.workers import start_worker, stop_worker

# What each variant sets on top of the defaults. "strict" is the worker's sandbox as it was
# before issue 15 (the SDK's restrictions, every workflow sandboxed); "sandbox-all" sandboxes
# every workflow with haul's passthrough modules; "default" also runs the workflows marked
# sandboxed=False (the load-generation ones among them) without a sandbox.
VARIANTS: dict[str, dict[str, str]] = {
    "default": {},
    "strict": {"HAUL_WORKFLOW_SANDBOX": "strict"},
    "sandbox-all": {"HAUL_WORKFLOW_SANDBOX": "all"},
    "asyncio-loop": {"HAUL_EVENT_LOOP": "asyncio"},
    "eager-activities-off": {"HAUL_EAGER_ACTIVITIES": "false"},
    "pollers-2": {
        "HAUL_WORKFLOW_TASK_POLLERS": "2",
        "HAUL_ACTIVITY_TASK_POLLERS": "2",
    },
    "grpc-plain": {"HAUL_GRPC_COMPRESSION": "none"},
    "pollers-10": {
        "HAUL_WORKFLOW_TASK_POLLERS": "10",
        "HAUL_ACTIVITY_TASK_POLLERS": "10",
    },
}

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def thread_cpu(pid: int) -> Counter[str]:
    """CPU seconds by thread name (the Python main thread carries the process's name; the SDK
    core's Rust threads are tokio-runtime-*), so Python and Rust costs read apart."""
    out: Counter[str] = Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[comm] += (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


@dataclass
class Sample:
    variant: str
    wf_per_s: float
    workflows: int
    failures: int
    cpu_s: float
    p50_ms: float
    threads: Counter[str]

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s / self.workflows * 1000 if self.workflows else float("nan")


def top_frames(raw: Path, n: int = 25) -> list[tuple[str, float, float]]:
    """(frame, self %, total %) from py-spy's collapsed stacks, by inclusive share."""
    self_count: Counter[str] = Counter()
    total_count: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        samples += count
        frames = stack.split(";")
        for frame in set(frames):
            total_count[frame] += count
        self_count[frames[-1]] += count
    # Frames on (nearly) every stack are the entry point and the event loop: say nothing.
    return [
        (frame, 100 * self_count[frame] / samples, 100 * c / samples)
        for frame, c in total_count.most_common()
        if c < 0.75 * samples
    ][:n]


async def one(
    target_name: str,
    variant: str,
    *,
    duration: float,
    concurrency: int,
    warmup: float,
    profile: Path | None,
    native: bool = False,
) -> Sample:
    rec = Registry().get(target_name)
    if rec is None:
        sys.exit(f"no local cluster {target_name!r}; start one with `haul stack up`")
    tgt = resolve_target(target_name)
    saved = {k: os.environ.get(k) for k in VARIANTS[variant]}
    os.environ.update(VARIANTS[variant])
    os.environ["HAUL_TASK_QUEUES"] = "loadgen"
    try:
        pid = start_worker(rec, role="bench-worker")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        os.environ.pop("HAUL_TASK_QUEUES", None)
    spy = None
    try:
        client = HaulClient(await tgt.client())
        if warmup:
            await drive(
                client,
                duration=warmup,
                concurrency=concurrency,
                tag=f"benchw{uuid.uuid4().hex[:8]}",
            )
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
            py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
            with open(profile / f"{variant}.log", "wb") as spy_log:
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(pid),
                        "--format",
                        "raw",
                        "--rate",
                        "200",
                        *(["--native", "--threads"] if native else ["--gil"]),
                        "--duration",
                        str(int(duration)),
                        "-o",
                        str(profile / f"{variant}.txt"),
                    ],
                    stdout=spy_log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            await asyncio.sleep(1.0)
        before, threads_before = cpu_seconds(pid), thread_cpu(pid)
        result = await drive(
            client, duration=duration, concurrency=concurrency, tag=f"bench{uuid.uuid4().hex[:8]}"
        )
        used = cpu_seconds(pid) - before
        threads = thread_cpu(pid)
        threads.subtract(threads_before)
    finally:
        if spy is not None:
            try:
                await asyncio.to_thread(spy.wait, duration + 30)
            except subprocess.TimeoutExpired:
                stop_pid(spy.pid)
        stop_worker(rec, "bench-worker")
    return Sample(
        variant,
        result.workflows / result.seconds,
        result.workflows,
        result.failures,
        used,
        statistics.median(result.latency_ms) if result.latency_ms else 0.0,
        threads,
    )


async def eager_start_round(
    target_name: str, *, eager: bool, duration: float, concurrency: int, warmup: float
) -> Sample:
    """One process that is both the worker and the client, as a service that starts its own
    workflows is: eager workflow start hands the first workflow task back in the start
    response, skipping a poll. CPU is this whole process's (worker and client)."""
    tgt = resolve_target(target_name)
    client = await tgt.client()
    queue = f"bench-eager-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        client,
        task_queue=queue,
        workflows=[NoopActivityWorkflow],
        activities=[LoadgenActivities().noop],
    )
    latencies: list[float] = []
    eagerly = failures = 0
    seq = itertools.count()

    async def loop(until: float, measure: bool) -> None:
        nonlocal eagerly, failures
        while time.perf_counter() < until:
            t = time.perf_counter()
            try:
                handle = await client.start_workflow(
                    NoopActivityWorkflow.run,
                    NoopInput(tag=queue),
                    id=f"{queue}-{next(seq)}",
                    task_queue=queue,
                    request_eager_start=eager,
                )
                await handle.result()
            except Exception:
                failures += 1
                continue
            if measure:
                latencies.append(time.perf_counter() - t)
                eagerly += bool(getattr(handle, "__temporal_eagerly_started", False))

    async with worker:
        until = time.perf_counter() + warmup
        await asyncio.gather(*(loop(until, False) for _ in range(concurrency)))
        before, threads_before = cpu_seconds(os.getpid()), thread_cpu(os.getpid())
        start = time.perf_counter()
        await asyncio.gather(*(loop(start + duration, True) for _ in range(concurrency)))
        seconds = time.perf_counter() - start
        used = cpu_seconds(os.getpid()) - before
        threads = thread_cpu(os.getpid())
        threads.subtract(threads_before)
    name = f"eager-start-{'on' if eager else 'off'} ({eagerly}/{len(latencies)} eager)"
    return Sample(
        name,
        len(latencies) / seconds,
        len(latencies),
        failures,
        used,
        statistics.median(latencies) * 1000 if latencies else 0.0,
        threads,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", default="default", help="local cluster name")
    parser.add_argument(
        "--variants",
        default="strict,sandbox-all,default",
        help=f"comma-separated, of: {', '.join(VARIANTS)}",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per drive")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles into this directory")
    parser.add_argument(
        "--native",
        action="store_true",
        help="with --profile: sample every thread with native frames (the SDK core's Rust "
        "threads too), not only the GIL holder",
    )
    parser.add_argument(
        "--eager-start",
        action="store_true",
        help="instead: one process as worker and client, eager workflow start on and off",
    )
    args = parser.parse_args()
    if args.eager_start:
        eager_samples = [
            asyncio.run(
                eager_start_round(
                    args.target,
                    eager=eager,
                    duration=args.duration,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                )
            )
            for _ in range(args.rounds)
            for eager in (False, True)
        ]
        for s in eager_samples:
            print(
                f"{s.variant}: {s.workflows} wf, {s.wf_per_s:.1f} wf/s, "
                f"{s.cpu_per_1000:.2f} CPU-s/1000 wf (worker and client), p50 {s.p50_ms:.0f} ms, "
                f"{s.failures} failures",
                flush=True,
            )
        return
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        sys.exit(f"unknown variant(s) {unknown}; known: {', '.join(VARIANTS)}")

    samples: list[Sample] = []
    # py-spy pauses the process it samples, which costs CPU of its own: profiles come from a
    # round of their own (round 0), left out of the medians.
    first = 0 if args.profile else 1
    for r in range(first, args.rounds + 1):
        for name in names:
            s = asyncio.run(
                one(
                    args.target,
                    name,
                    duration=args.duration,
                    concurrency=args.concurrency,
                    warmup=args.warmup,
                    profile=args.profile if r == 0 else None,
                    native=args.native,
                )
            )
            if r > 0:
                samples.append(s)
            print(
                f"round {r}{' (profiled)' if r == 0 else ''} {name}: {s.workflows} wf, "
                f"{s.wf_per_s:.1f} wf/s, "
                f"{s.cpu_per_1000:.2f} CPU-s/1000 wf, p50 {s.p50_ms:.0f} ms, "
                f"{s.failures} failures",
                flush=True,
            )
            by_thread = ", ".join(
                f"{name} {sec / s.workflows * 1000:.2f}"
                for name, sec in s.threads.most_common(4)
                if s.workflows
            )
            print(f"  CPU-s/1000 wf by thread: {by_thread}", flush=True)

    console = Console()
    table = Table(title=f"worker CPU per 1,000 workflows, median of {args.rounds} round(s)")
    for col in ("variant", "wf/s", "CPU-s / 1,000 wf", "range", "p50 ms", "failures"):
        table.add_column(col, justify="right")
    for name in names:
        mine = [s for s in samples if s.variant == name]
        if not mine:  # --rounds 0: the profiled round only
            continue
        per = [s.cpu_per_1000 for s in mine]
        table.add_row(
            name,
            f"{statistics.median(s.wf_per_s for s in mine):.1f}",
            f"{statistics.median(per):.2f}",
            f"{min(per):.2f}-{max(per):.2f}",
            f"{statistics.median(s.p50_ms for s in mine):.0f}",
            str(sum(s.failures for s in mine)),
        )
    console.print(table)
    if args.profile:
        for name in names:
            raw = args.profile / f"{name}.txt"
            if not raw.exists():
                continue
            console.print(f"[bold]{name}[/bold]: top frames (self %, total %)")
            for frame, own, total in top_frames(raw):
                console.print(f"  {own:5.1f} {total:5.1f}  {frame}")
    failed = sum(s.failures for s in samples)
    if failed:
        sys.exit(f"{failed} workflow(s) failed")


if __name__ == "__main__":
    main()
