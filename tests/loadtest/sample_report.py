"""A small but complete RunReport, built by hand, for the tests that need no Locust run."""

from __future__ import annotations

from pathlib import Path

from app.loadtest.models import (
    Capacity,
    CapacityStep,
    Comparison,
    Gate,
    HarnessStats,
    Histories,
    ReportFiles,
    RunReport,
    StatsRow,
    Summary,
)
from app.loadtest.settings import LoadSettings, RunSettings, StepShape


def _step(step: int, users: int, rate: float, p95_ms: float, held: bool) -> CapacityStep:
    return CapacityStep(
        step=step,
        users=users,
        actions_per_s=rate,
        operations=40,
        p95_ms=p95_ms,
        failure_ratio=0.0,
        within_slo=held,
    )


def capacity_report(out: Path, held: float, broke: float) -> RunReport:
    """A two-step capacity run: the first step held `held` actions/s, the second broke."""
    steps = [_step(1, 2, held, 80.0, True), _step(2, 4, broke, 5000.0, False)]
    shape = StepShape(step_start=2, step_users=2, steps=2, step_seconds=5)
    return RunReport(
        scenario="start_and_complete",
        description="start and await a no-op workflow",
        target="lt-dev",
        namespace="haul",
        run_tag="lt0123456789",
        out_dir=out,
        started_at=1000.0,
        ended_at=1012.0,
        duration_s=12.0,
        wall_s=12.0,
        settings=RunSettings(
            scenario="start_and_complete",
            users=4,
            out_dir=out,
            load=LoadSettings(run_tag="lt0123456789", shape=shape),
        ),
        summary=Summary(
            operations=70,
            operations_in_window=70,
            operations_per_s=70 / 12,
            actions_total=140,
            actions_per_s=140 / 12,
            actions_per_s_sustained=12.0,
            operations_harness=70,
            actions_per_operation=2.0,
            p50_ms=40.0,
            p95_ms=900.0,
            p99_ms=5000.0,
            all_requests_p95_ms=900.0,
            failures=0,
            failure_ratio=0.0,
            accounting_flags=[],
        ),
        server_actions={"grpc_StartWorkflowExecution": 70, "command_ScheduleActivityTask": 70},
        history_actions={"grpc_StartWorkflowExecution": 70, "command_ScheduleActivityTask": 70},
        histories=Histories(runs=70, workflow_ids=70),
        accounting=[
            Comparison(
                action_type="grpc_StartWorkflowExecution",
                server=70,
                expected=70,
                source="history",
                diff_pct=0.0,
                flagged=False,
            )
        ],
        gates=[Gate(name="failure ratio", limit=0.01, measured=0.0, passed=True, detail="0 of 70")],
        passed=True,
        locust_stats=[
            StatsRow(
                type="temporal",
                name="start_and_complete",
                requests=70,
                failures=0,
                p50_ms=40.0,
                p95_ms=900.0,
                p99_ms=5000.0,
                avg_ms=200.0,
                rps=5.8,
            )
        ],
        harness=HarnessStats(processes=1, connect_calls_per_process=[1]),
        action_series=[],
        files=ReportFiles(
            locust_csv=[],
            locust_json=str(out / "locust.json"),
            html=str(out / "report.html"),
            report_json=str(out / "report.json"),
        ),
        capacity=Capacity(
            steps=steps,
            max_sustained_actions_per_s=held,
            best_step=steps[0],
            breaking_step=steps[1],
        ),
    )
