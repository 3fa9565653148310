"""Run a Locust load test as a subprocess and account for what it cost in billable actions.

The parent (`haul loadtest ...`) never imports Locust: Locust patches the interpreter with
gevent, and this process uses asyncio temporalio clients. The parent takes the action baseline,
samples the server's counter every second while Locust runs, waits for quiet, tallies the
histories of every run the harness touched, and writes the report.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from app.domains import app_database
from app.loadtest import accounting, report, scenarios
from app.loadtest.models import (
    ActionRate,
    Capacity,
    CapacityStep,
    HarnessStats,
    Histories,
    HistoryRow,
    ProcessStats,
    ReportFiles,
    RunReport,
    ShapeTimeline,
    StepWindow,
    Summary,
)
from app.loadtest.process_files import HARNESS_GLOB, read_roots, shape_timeline_file
from app.loadtest.settings import HANDOFF_VAR, Handoff, RunSettings, StepShape
from app.platform.actions import ActionReader, delta
from app.platform.client import connect
from app.stack import cluster, targets
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import start_worker


def locust_files(shape: bool) -> str:
    """The locustfile Locust loads (and the stepped shape for capacity runs), from this package,
    so an installed wheel runs load tests with no checkout beside it."""
    here = Path(__file__).resolve().parent
    files = [here / "locustfile.py"] + ([here / "shapes.py"] if shape else [])
    return ",".join(str(f) for f in files)


# ---------------------------------------------------------------------------------------------
# Targets


@dataclass
class Target:
    """Where the load goes: a local cluster by name, an envconfig profile, or an address."""

    label: str
    namespace: str
    metrics_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    profile: str | None = None
    config_file: str | None = None
    record: ClusterRecord | None = None

    async def client(self, interceptors: Sequence[Any] = ()) -> Client:
        if self.profile is None:
            # An address target: the same TEMPORAL_* variables the Locust process gets.
            os.environ.update(self.env)
        return await connect(self.profile, config_file=self.config_file, interceptors=interceptors)


def resolve_target(
    target: str, *, namespace: str | None = None, metrics_url: str | None = None
) -> Target:
    """NAME of a local cluster, an envconfig profile NAME, or HOST:PORT."""
    rec = Registry().get(target)
    if rec is not None:
        local = targets.for_cluster(rec)
        return Target(
            label=target,
            namespace=namespace or local.namespace,
            metrics_url=metrics_url or rec.metrics_url,
            # The worker's own connection, app database and blob store (parcel_ingest).
            env=local.env(),
            profile=local.profile,
            config_file=local.config_file,
            record=rec,
        )
    if ":" in target:
        ns = namespace or cluster.APP_NAMESPACE
        return Target(
            label=target,
            namespace=ns,
            metrics_url=metrics_url,
            env={"TEMPORAL_ADDRESS": target, "TEMPORAL_NAMESPACE": ns},
        )
    env = {"TEMPORAL_PROFILE": target}
    # The profile's file goes along: the Locust environment starts with no TEMPORAL_* at all.
    config_file = os.environ.get("TEMPORAL_CONFIG_FILE")
    if config_file:
        env["TEMPORAL_CONFIG_FILE"] = config_file
    if namespace:
        env["TEMPORAL_NAMESPACE"] = namespace
    return Target(
        label=target,
        namespace=namespace or cluster.APP_NAMESPACE,
        metrics_url=metrics_url,
        env=env,
        profile=target,
        config_file=config_file,
    )


def ensure_worker(target: Target) -> int | None:
    """For a local cluster: make its app database ready for the parcel pipeline (migrations,
    contract rates; idempotent) and, with no live worker, start one (its own process).
    Returns the pid of a worker started here."""
    rec = target.record
    if rec is None:
        return None
    fresh = Registry().get(rec.name) or rec
    app_database.prepare(fresh.dsn())
    if fresh.running("worker"):
        return None
    return start_worker(fresh)


# ---------------------------------------------------------------------------------------------
# One Locust run


def _locust_argv(s: RunSettings, sc: scenarios.Scenario, prefix: Path) -> list[str]:
    shape = s.load.shape is not None
    argv = [sys.executable, "-m", "locust", "-f", locust_files(shape)]
    argv += ["--csv", str(prefix), "--csv-full-history", "--json-file", str(prefix)]
    argv += ["--exit-code-on-error", "0", "--loglevel", "WARNING"]
    # Users finish the operation in hand when the run time ends, so every started workflow is
    # a reported operation and actions per operation is exact.
    argv += ["--stop-timeout", str(int(s.stop_timeout))]
    if s.processes > 1:
        argv += ["--processes", str(s.processes)]
    if s.expect_workers:
        argv += ["--master", "--expect-workers", str(s.expect_workers)]
        argv += ["--master-bind-host", s.master_bind_host]
        argv += ["--master-bind-port", str(s.master_bind_port)]
        if not s.web:
            argv += ["--expect-workers-max-wait", str(int(s.workers_max_wait))]
    if s.web:
        argv += ["--web-host", "127.0.0.1", "--web-port", str(s.web_port)]
        argv += ["-u", str(s.users), "-r", str(s.spawn_rate)]
    else:
        argv += ["--headless", "--only-summary"]
        if not shape:
            argv += ["-u", str(s.users), "-r", str(s.spawn_rate)]
            # A master ends the run itself (distributed.py), so no operation is lost.
            if not s.expect_workers:
                argv += ["-t", f"{int(s.duration)}s"]
    return argv + list(sc.user_classes)


def _locust_env(target: Target, s: RunSettings) -> dict[str, str]:
    """The Locust process's environment: this one without TEMPORAL_*, then the target's and
    the run's LoadSettings as HAUL_LT_* variables; a master also gets the workers' handoff."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "HAUL_LT_"))}
    env.update(target.env)
    env.update(s.load.env())
    if s.expect_workers:
        env[HANDOFF_VAR] = Handoff.of(s.load, env).model_dump_json()
    return env


def load_start(out: Path, history: Sequence[HistoryRow], fallback: float) -> float:
    """When the load began: when a capacity shape asked for its first step's users, else
    Locust's first stats row with users running. Its stats rows start earlier: a master writes
    them while it waits for its workers, which on a busy machine takes longer than a step."""
    timeline = ShapeTimeline.read(shape_timeline_file(out))
    if timeline is not None and timeline.steps:
        return timeline.steps[0].requested_at
    running = [h.t for h in history if h.users > 0]
    if running:
        return running[0]
    return history[0].t if history else fallback


def _operations_in_window(history: Sequence[HistoryRow], names: Sequence[str], end: float) -> int:
    """Successful operations Locust had counted by `end`."""
    if not history:
        return 0
    total = 0
    for name in names:
        rows = [h for h in history if h.name == name and h.t <= end]
        if rows:
            total += rows[-1].total_requests - rows[-1].total_failures
    return total


def _harness_stats(out: Path) -> HarnessStats:
    """Merge the per-process harness files the Locust processes wrote."""
    files = sorted(out.glob(HARNESS_GLOB))
    return HarnessStats.merge(ProcessStats.model_validate_json(p.read_text()) for p in files)


async def run_load(target: Target, s: RunSettings, console: Any | None = None) -> RunReport:
    """Run one scenario under Locust, then measure, write report.json and report.html, and
    return the report."""
    sc = scenarios.get(s.scenario)
    run_tag = f"lt{uuid.uuid4().hex[:10]}"
    out = s.out_dir / f"{s.scenario}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S')}-{run_tag}"
    out.mkdir(parents=True, exist_ok=True)
    # A distributed master holds the load for the run time, then ends the run itself.
    stop_after = s.duration if s.expect_workers and not s.web else 0.0
    s = s.model_copy(
        update={
            "load": s.load.model_copy(
                update={"run_tag": run_tag, "out": out, "stop_after": stop_after}
            )
        }
    )
    prefix = out / "locust"
    reader = ActionReader(target.metrics_url, target.namespace) if target.metrics_url else None

    baseline = await reader.wait_quiet(timeout=s.quiet_timeout) if reader else None
    since = datetime.now(UTC) - timedelta(seconds=2)
    stop = asyncio.Event()
    sampler = asyncio.create_task(reader.sample(stop, s.sample_interval)) if reader else None
    log_path = out / "locust.log"
    started = time.time()
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *_locust_argv(s, sc, prefix),
            env=_locust_env(target, s),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
        loop = asyncio.get_running_loop()
        if s.web:
            # Ctrl-C must not cancel this wait, so the report is still written afterwards.
            # Locust's web mode does not stop on SIGINT; it stops cleanly (CSVs written) on
            # SIGTERM, so Ctrl-C here is passed on as SIGTERM.
            loop.add_signal_handler(signal.SIGINT, lambda: proc.send_signal(signal.SIGTERM))
        try:
            code = await proc.wait()
        finally:
            if s.web:
                loop.remove_signal_handler(signal.SIGINT)
    ended = time.time()
    stop.set()
    series = await sampler if sampler else []
    if (
        code not in (0, None)
        and s.expect_workers
        and "Gave up waiting for workers" in (log_path.read_text(errors="replace"))
    ):
        raise RuntimeError(
            f"only some of the {s.expect_workers} Locust workers connected to "
            f"{s.master_bind_host}:{s.master_bind_port} within {s.workers_max_wait:.0f}s; run "
            "`haul loadtest locust-worker --master-host HOST` for each (log: "
            f"{log_path})"
        )
    if code not in (0, None):
        raise RuntimeError(
            f"locust exited with {code}; its log {log_path} ends with:\n"
            + "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
        )

    server: dict[str, int] = {}
    if reader and baseline is not None:
        server = delta(baseline, await reader.wait_quiet(timeout=s.quiet_timeout))
    client = await target.client()
    tally = await accounting.tally_runs(client, run_tag, since, roots=read_roots(out))
    harness = _harness_stats(out)
    client_counts = {"grpc_QueryWorkflow": harness.queries_succeeded}
    comparison = (
        accounting.compare(server, tally.by_type, client_counts, s.tolerance_pct) if reader else []
    )

    stats = report.read_stats(prefix)
    history = report.read_history(prefix)
    gates = report.slo_gates(
        stats, sc.operations, p95_ms=s.slo_p95_ms, failure_ratio=s.slo_failure_ratio
    ) + report.accounting_gates(comparison, s.tolerance_pct)
    rates = report.action_rates(series)
    # Rates are over the load window: the -t run time for a fixed run (Locust's start-up and
    # shut-down are not load), the whole subprocess for web and stepped runs.
    duration = ended - started if (s.web or s.load.shape) else s.duration
    op_rows = [r for r in stats if r.name in sc.operations]
    ops = sum(r.requests - r.failures for r in op_rows)
    t0 = load_start(out, history, started)
    in_window = _operations_in_window(history, sc.operations, t0 + duration) if not s.web else ops
    requests = sum(r.requests for r in op_rows)
    failures = sum(r.failures for r in op_rows)
    total_actions = sum(server.values())
    # Actions per operation divides by every operation the harness finished, including those
    # that ended during the stop timeout (their actions are in the server's count too).
    harness_ops = harness.succeeded(sc.operations)
    per_op_base = max(harness_ops, ops)
    agg = next((r for r in stats if r.name == "Aggregated"), None)
    gate_op = max(op_rows, key=lambda r: r.requests, default=None)
    result = RunReport(
        scenario=s.scenario,
        description=sc.description,
        target=target.label,
        namespace=target.namespace,
        run_tag=run_tag,
        out_dir=out,
        started_at=started,
        ended_at=ended,
        duration_s=duration,
        wall_s=ended - started,
        settings=s,
        summary=Summary(
            operations=ops,
            operations_in_window=in_window,
            operations_per_s=in_window / duration if duration else 0.0,
            actions_total=total_actions,
            actions_per_s=total_actions / duration if duration else 0.0,
            actions_per_s_sustained=report.sustained_rate(rates, started, ended),
            operations_harness=harness_ops,
            actions_per_operation=total_actions / per_op_base if per_op_base else 0.0,
            p50_ms=gate_op.p50_ms if gate_op else None,
            p95_ms=gate_op.p95_ms if gate_op else None,
            p99_ms=gate_op.p99_ms if gate_op else None,
            all_requests_p95_ms=agg.p95_ms if agg else None,
            failures=failures,
            failure_ratio=failures / requests if requests else 0.0,
            accounting_flags=[r.action_type for r in comparison if r.flagged],
        ),
        server_actions=server,
        history_actions=tally.by_type,
        histories=Histories(runs=tally.runs, workflow_ids=tally.workflow_ids),
        accounting=comparison,
        gates=gates,
        passed=all(g.passed for g in gates),
        locust_stats=stats,
        harness=harness,
        action_series=rates,
        files=ReportFiles(
            locust_csv=[str(p) for p in sorted(out.glob("locust_*.csv"))],
            locust_json=str(prefix) + ".json",
            html=str(out / "report.html"),
            report_json=str(out / "report.json"),
        ),
    )
    if s.load.shape is not None:
        # Each step's window is the one the shape ran: from its users all running to its end.
        windows = step_windows(out, s.load.shape)
        result.capacity = capacity_steps(windows, history, rates, sc.operations, s)
    result.write()
    Path(result.files.html).write_text(report.render_html(result, history))
    return result


# ---------------------------------------------------------------------------------------------
# Capacity: evaluate each step of the stepped shape


def step_windows(out: Path, shape: StepShape) -> list[StepWindow]:
    """Every step of the shape as it ran (the timeline its process recorded); a step it never
    reached, or a run with no timeline, has no ready time: the harness was not ready."""
    timeline = ShapeTimeline.read(shape_timeline_file(out)) or ShapeTimeline()
    ran = {w.step: w for w in timeline.steps}
    return [
        ran.get(i + 1) or StepWindow(step=i + 1, users=shape.users(i), requested_at=0.0)
        for i in range(shape.steps)
    ]


def capacity_steps(
    windows: Sequence[StepWindow],
    history: Sequence[HistoryRow],
    rates: Sequence[ActionRate],
    operations: Sequence[str],
    s: RunSettings,
) -> Capacity:
    """Per step: users, sustained actions/s, p95 and failure ratio of the business operations,
    and whether the step held the SLOs, over its window (from its users all running to its
    end). A step whose users never all ran is the harness not ready: it has no figures and
    is neither held nor the breaking step. The capacity is the best passing step before the
    first failing one; the breaking step is that first failing one."""
    rows: list[CapacityStep] = []
    for window in windows:
        if window.ready_at is None:
            rows.append(
                CapacityStep(
                    step=window.step,
                    users=window.users,
                    actions_per_s=0.0,
                    operations=None,
                    p95_ms=None,
                    failure_ratio=0.0,
                    within_slo=False,
                    harness_ready=False,
                )
            )
            continue
        lo = window.ready_at
        # A run cut short (interrupted) has no end for its last step: its planned length.
        planned = lo + (s.load.shape.step_seconds if s.load.shape else 0.0)
        hi = window.ended_at if window.ended_at is not None else planned
        length = hi - lo
        settle = lo + length * 0.25  # skip the ramp at the start of each step
        step_rates = [r.actions_per_s for r in rates if settle < r.t <= hi]
        ops = [h for h in history if h.name in operations and lo < h.t <= hi]
        late = [h.p95_ms for h in ops if h.t > lo + length / 2 and h.p95_ms is not None]
        p95 = max(late, default=None)
        reqs = fails = 0
        for name in operations:
            mine = [h for h in ops if h.name == name]
            if mine:
                before = [h for h in history if h.name == name and h.t <= lo]
                base_r = before[-1].total_requests if before else 0
                base_f = before[-1].total_failures if before else 0
                reqs += mine[-1].total_requests - base_r
                fails += mine[-1].total_failures - base_f
        ratio = fails / reqs if reqs else 1.0
        ok = reqs > 0 and p95 is not None and p95 <= s.slo_p95_ms and ratio <= s.slo_failure_ratio
        rows.append(
            CapacityStep(
                step=window.step,
                users=window.users,
                actions_per_s=round(statistics.median(step_rates), 2) if step_rates else 0.0,
                operations=reqs - fails,
                p95_ms=p95,
                failure_ratio=round(ratio, 4),
                within_slo=ok,
            )
        )
    best: CapacityStep | None = None
    breaking: CapacityStep | None = None
    for row in rows:
        if not row.harness_ready:
            continue
        if not row.within_slo:
            breaking = row
            break
        if best is None or row.actions_per_s > best.actions_per_s:
            best = row
    return Capacity(
        steps=rows,
        max_sustained_actions_per_s=best.actions_per_s if best else 0.0,
        best_step=best,
        breaking_step=breaking,
    )
