"""The ceiling: three contenders drive start_and_complete against one server, interleaved.

- **go**: Temporal's Go SDK starter and worker (loadtest/goref), the reference;
- **bare**: the bare asyncio starter (bare_starter.py) with haul's worker;
- **locust**: the Locust harness (`haul loadtest run`) with haul's worker.

With `cross`, two more split a bare/Go gap between starter and worker: **bare-on-go** (the
bare starter on the Go worker) and **go-on-haul** (the Go starter on haul's worker).

Each round runs the three in turn with the same workflows in flight for the same time, so
drift on a shared machine lands on all three. Every contender's billable actions come from
the server's counter and are checked against its runs' histories; the CPU of each worker and
starter process is taken over the contender's window. The report gives medians of the rounds
and the ratios the issue sets targets for: Locust/bare >= 0.9, bare/Go >= 0.9, and the Python
worker's CPU per workflow within 2x of the Go worker's.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

from app.domains.loadgen import DOMAIN as LOADGEN
from app.loadtest import accounting, goref
from app.loadtest.models import (
    CeilingRatios,
    CeilingReport,
    Contender,
    ContenderMedians,
    ContenderRun,
    HostLoad,
    RunReport,
    StarterResult,
)
from app.loadtest.runner import Target, run_load
from app.loadtest.settings import RunSettings
from app.platform.actions import ActionReader, delta

CONTENDERS: tuple[Contender, ...] = ("go", "bare", "locust")
CROSS: tuple[Contender, ...] = ("bare-on-go", "go-on-haul")
TARGET_LOCUST_OVER_BARE = 0.9
TARGET_BARE_OVER_GO = 0.9
TARGET_WORKER_CPU_OVER_GO = 2.0
# Users per second for the Locust contender: 1 ms apart, so N users start within N ms.
SPAWN_AT_ONCE = 1000.0


class WorkerGone(RuntimeError):
    """A worker the ceiling measures exited during the run: its CPU figure would be wrong."""


def process_cpu(pid: int, role: str = "worker") -> float:
    """CPU seconds (user + system) of a process and its live children, from /proc."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise psutil.NoSuchProcess(pid)
    except psutil.NoSuchProcess:
        raise WorkerGone(
            f"the {role} (pid {pid}) is not running, so its CPU cannot be measured; it exited "
            "or was killed during the ceiling run (see its log), and the run stops here"
        ) from None
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _per_1k(cpu: float, workflows: int) -> float:
    return cpu / workflows * 1000 if workflows else 0.0


class Ceiling:
    """One ceiling run: the target, its worker pids, the Go binary and where files go."""

    def __init__(
        self,
        target: Target,
        *,
        concurrency: int,
        duration: float,
        out: Path,
        go_binary: Path,
        python_worker_pid: int,
        go_worker_pid: int,
        address: str,
        quiet_timeout: float = 120.0,
        sample_interval: float = 1.0,
        cross: bool = False,
    ) -> None:
        self.target = target
        self.concurrency = concurrency
        self.duration = duration
        self.out = out
        self.go_binary = go_binary
        self.worker_pids: dict[Contender, int] = {
            "go": go_worker_pid,
            "bare": python_worker_pid,
            "locust": python_worker_pid,
            "bare-on-go": go_worker_pid,
            "go-on-haul": python_worker_pid,
        }
        self.contenders = CONTENDERS + CROSS if cross else CONTENDERS
        self.address = address
        self.quiet_timeout = quiet_timeout
        self.sample_interval = sample_interval
        self.reader = (
            ActionReader(target.metrics_url, target.namespace) if target.metrics_url else None
        )

    async def _starter(self, contender: Contender, tag: str) -> StarterResult:
        if contender in ("go", "go-on-haul"):
            return await goref.run_starter(
                self.go_binary,
                address=self.address,
                namespace=self.target.namespace,
                concurrency=self.concurrency,
                duration=self.duration,
                tag=tag,
                out=self.out,
                task_queue=goref.TASK_QUEUE if contender == "go" else LOADGEN.task_queue,
            )
        result, log = self.out / f"{tag}.json", self.out / f"{tag}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
        env.update(self.target.env)
        argv = [sys.executable, "-m", "app.loadtest.bare_starter", "--tag", tag]
        argv += ["--concurrency", str(self.concurrency), "--duration", str(self.duration)]
        if contender == "bare-on-go":
            argv += ["--task-queue", goref.TASK_QUEUE]
        with log.open("wb") as fh:
            proc = await asyncio.create_subprocess_exec(
                *argv, "--out", str(result), env=env, stdout=fh, stderr=asyncio.subprocess.STDOUT
            )
            code = await proc.wait()
        if code != 0 or not result.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"the bare starter exited with {code}; its log says:\n{tail}")
        return StarterResult.model_validate_json(result.read_text())

    async def _starter_run(self, contender: Contender, round_no: int) -> ContenderRun:
        """A contender with a starter process (all but Locust), measured like a Locust run."""
        tag = f"ceil{contender}{uuid.uuid4().hex[:10]}"
        reader = self.reader
        baseline = await reader.wait_quiet(timeout=self.quiet_timeout) if reader else None
        since = datetime.now(UTC) - timedelta(seconds=2)
        stop = asyncio.Event()
        # Sample the counter as a Locust run does, so every contender pays the same scrapes.
        sampler = asyncio.create_task(reader.sample(stop, self.sample_interval)) if reader else None
        worker = self.worker_pids[contender]
        role = "Go worker" if worker != self.worker_pids["bare"] else "haul worker"
        cpu0 = process_cpu(worker, role)
        try:
            res = await self._starter(contender, tag)
        finally:
            stop.set()
            if sampler:
                await sampler
        worker_cpu = process_cpu(worker, role) - cpu0
        server: dict[str, int] = {}
        if reader and baseline is not None:
            server = delta(baseline, await reader.wait_quiet(timeout=self.quiet_timeout))
        in_window = sum(1 for t in res.done_at_s if t <= self.duration)
        client = await self.target.client()
        tally = await accounting.tally_runs(client, tag, since)
        rows = accounting.compare(server, tally.by_type, {}) if reader else []
        return ContenderRun(
            contender=contender,
            round=round_no,
            run_tag=tag,
            workflows=res.workflows,
            failures=res.failures,
            seconds=self.duration,
            workflows_in_window=in_window,
            wf_per_s=in_window / self.duration,
            actions=server,
            actions_per_s=sum(server.values()) / self.duration,
            history_actions=tally.by_type,
            history_runs=tally.runs,
            accounting=rows,
            p50_ms=percentile(res.latency_ms, 0.5),
            p95_ms=percentile(res.latency_ms, 0.95),
            worker_cpu_s=worker_cpu,
            starter_cpu_s=res.cpu_seconds,
            worker_cpu_per_1k=_per_1k(worker_cpu, res.workflows),
            starter_cpu_per_1k=_per_1k(res.cpu_seconds, res.workflows),
        )

    async def _locust_run(self, round_no: int) -> tuple[ContenderRun, RunReport]:
        settings = RunSettings(
            scenario="start_and_complete",
            users=self.concurrency,
            # All users at once, as the other starters open all their loops at once: spawned
            # at N per second, the users' start-up spreads over the first second of the window.
            spawn_rate=SPAWN_AT_ONCE,
            duration=self.duration,
            out_dir=self.out,
            quiet_timeout=self.quiet_timeout,
            sample_interval=self.sample_interval,
        )
        worker = self.worker_pids["locust"]
        cpu0 = process_cpu(worker, "haul worker")
        report = await run_load(self.target, settings)
        worker_cpu = process_cpu(worker, "haul worker") - cpu0
        s = report.summary
        done = max(s.operations_harness, s.operations)
        return (
            ContenderRun(
                contender="locust",
                round=round_no,
                run_tag=report.run_tag,
                workflows=done,
                failures=s.failures,
                seconds=report.duration_s,
                workflows_in_window=s.operations_in_window,
                wf_per_s=s.operations_per_s,
                actions=report.server_actions,
                actions_per_s=s.actions_per_s,
                history_actions=report.history_actions,
                history_runs=report.histories.runs,
                accounting=report.accounting,
                p50_ms=s.p50_ms,
                p95_ms=s.p95_ms,
                worker_cpu_s=worker_cpu,
                starter_cpu_s=report.harness.load_cpu_seconds,
                worker_cpu_per_1k=_per_1k(worker_cpu, done),
                starter_cpu_per_1k=_per_1k(report.harness.load_cpu_seconds, done),
                locust_report=Path(report.files.report_json),
            ),
            report,
        )

    async def run(
        self, rounds: int, progress: Callable[[ContenderRun], Any] | None = None
    ) -> tuple[CeilingReport, RunReport | None]:
        """Every round runs go, bare, locust (and the cross pairings) in turn; returns the
        report (written to ceiling.json) and the last Locust RunReport (for the harness
        diagnosis)."""
        load0 = os.getloadavg()[0]
        runs: list[ContenderRun] = []
        last_locust: RunReport | None = None
        for round_no in range(1, max(1, rounds) + 1):
            for contender in self.contenders:
                if contender == "locust":
                    one, last_locust = await self._locust_run(round_no)
                else:
                    one = await self._starter_run(contender, round_no)
                runs.append(one)
                if progress:
                    progress(one)
        report = CeilingReport(
            target=self.target.label,
            namespace=self.target.namespace,
            concurrency=self.concurrency,
            duration_s=self.duration,
            rounds=max(1, rounds),
            go_binary=str(self.go_binary),
            runs=runs,
            medians={c: medians([r for r in runs if r.contender == c]) for c in self.contenders},
            ratios=ratios(runs),
            host=HostLoad(
                cpus=os.cpu_count() or 1, loadavg_1m_start=load0, loadavg_1m_end=os.getloadavg()[0]
            ),
            out_dir=self.out,
        )
        report.write()
        return report, last_locust


def _median(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def medians(runs: Sequence[ContenderRun]) -> ContenderMedians:
    return ContenderMedians(
        wf_per_s=statistics.median(r.wf_per_s for r in runs),
        actions_per_s=statistics.median(r.actions_per_s for r in runs),
        p50_ms=_median([r.p50_ms for r in runs]),
        p95_ms=_median([r.p95_ms for r in runs]),
        worker_cpu_per_1k=statistics.median(r.worker_cpu_per_1k for r in runs),
        starter_cpu_per_1k=statistics.median(r.starter_cpu_per_1k for r in runs),
    )


def ratios(runs: Sequence[ContenderRun]) -> CeilingRatios:
    """Per round, then the median over rounds: a round's contenders ran back to back."""
    by_round: dict[int, dict[str, ContenderRun]] = {}
    for r in runs:
        by_round.setdefault(r.round, {})[r.contender] = r

    def ratio(a: float, b: float) -> float:
        return a / b if b else 0.0

    rounds = list(by_round.values())
    crossed = [r for r in rounds if all(c in r for c in CROSS)]
    return CeilingRatios(
        locust_over_bare=statistics.median(
            ratio(r["locust"].wf_per_s, r["bare"].wf_per_s) for r in rounds
        ),
        bare_over_go=statistics.median(ratio(r["bare"].wf_per_s, r["go"].wf_per_s) for r in rounds),
        python_worker_cpu_over_go=statistics.median(
            ratio(r["bare"].worker_cpu_per_1k, r["go"].worker_cpu_per_1k) for r in rounds
        ),
        bare_starter_over_go_starter=statistics.median(
            ratio(r["bare-on-go"].wf_per_s, r["go"].wf_per_s) for r in crossed
        )
        if crossed
        else None,
        haul_worker_over_go_worker=statistics.median(
            ratio(r["go-on-haul"].wf_per_s, r["go"].wf_per_s) for r in crossed
        )
        if crossed
        else None,
    )


def diagnose(bare: ContenderRun, locust: RunReport) -> list[str]:
    """Where the Locust harness loses time against the bare starter, from what both measured."""
    notes = []
    harness = locust.harness
    lag = harness.submit_lag_p95_ms + harness.wake_lag_p95_ms
    notes.append(
        f"bridge overhead (p95 submit lag + p95 wake lag): {lag:.2f} ms per call, against a "
        f"bare p50 of {bare.p50_ms or 0:.1f} ms per workflow"
    )
    cpu = harness.cpu_seconds
    dur = locust.duration_s
    if harness.processes and dur:
        notes.append(
            f"Locust process CPU: {cpu:.1f} s in all, {harness.load_cpu_seconds:.1f} s under "
            f"load over {dur:.1f} s ({harness.load_cpu_seconds / dur:.0%} of one core); the "
            f"bare starter's: {bare.starter_cpu_s:.1f} s over {bare.seconds:.1f} s"
        )
    p50 = locust.summary.p50_ms
    if p50 is not None:
        notes.append(f"latency p50: harness {p50} ms, bare starter {bare.p50_ms or 0:.1f} ms")
    return notes
