"""SLO gates and capacity steps from Locust's rows, with no Locust run: a business operation
that never succeeded fails its gate whatever the failure SLO, and a capacity run stops at its
first failing step and reports it as the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.loadtest.models import ActionRate, Gate, HistoryRow, ShapeTimeline, StatsRow, StepWindow
from app.loadtest.process_files import shape_timeline_file
from app.loadtest.report import slo_gates
from app.loadtest.runner import capacity_steps, load_start, step_windows
from app.loadtest.settings import RunSettings, StepShape

# The loosest failure SLO the settings accept.
LOOSEST = 0.99


def _row(name: str, requests: int, failures: int, p95: float = 100.0) -> StatsRow:
    return StatsRow(
        type="temporal",
        name=name,
        requests=requests,
        failures=failures,
        p50_ms=p95 / 2,
        p95_ms=p95,
        p99_ms=p95,
        avg_ms=p95 / 2,
        rps=1.0,
    )


def _failed(gates: list[Gate]) -> list[str]:
    return [g.name for g in gates if not g.passed]


@pytest.mark.parametrize("scenario_ops", [("start_and_complete",), ("signal_with_start",)])
def test_a_run_whose_operations_all_failed_fails_at_the_loosest_slo(
    scenario_ops: tuple[str, ...],
) -> None:
    (op,) = scenario_ops
    gates = slo_gates([_row(op, 40, 40)], scenario_ops, p95_ms=1e9, failure_ratio=LOOSEST)
    assert _failed(gates) == [f"{op} completed", "failure ratio"]


def test_one_operation_of_a_mix_failing_every_time_fails_its_gate() -> None:
    ops = ("start_and_complete", "signal_with_start", "parcel_ingest")
    stats = [
        _row("start_and_complete", 300, 0),
        _row("signal_with_start", 300, 0),
        _row("parcel_ingest", 5, 5),
    ]
    gates = slo_gates(stats, ops, p95_ms=1e9, failure_ratio=LOOSEST)
    assert _failed(gates) == ["parcel_ingest completed"]


def test_an_operation_that_never_ran_fails_and_a_clean_run_passes() -> None:
    ops = ("start_and_complete", "parcel_ingest")
    gates = slo_gates([_row("start_and_complete", 10, 0)], ops, p95_ms=1e9, failure_ratio=0.01)
    assert _failed(gates) == ["parcel_ingest completed"]
    both = [_row("start_and_complete", 10, 0), _row("parcel_ingest", 3, 0)]
    assert _failed(slo_gates(both, ops, p95_ms=1e9, failure_ratio=0.01)) == []


def test_settings_refuse_a_failure_slo_that_lets_everything_fail() -> None:
    with pytest.raises(ValidationError, match="slo_failure_ratio"):
        RunSettings(scenario="start_and_complete", slo_failure_ratio=1.0)


def _history(
    op: str, t0: float, per_step: list[tuple[int, int, float]], length: float
) -> list[HistoryRow]:
    """One stats-history row per second: each step adds (requests, failures) evenly, at p95."""
    rows, total_r, total_f = [], 0, 0
    for i, (reqs, fails, p95) in enumerate(per_step):
        seconds = int(length)
        for s in range(1, seconds + 1):
            total_r += reqs // seconds
            total_f += fails // seconds
            rows.append(
                HistoryRow(
                    t=t0 + i * length + s,
                    users=i + 1,
                    name=op,
                    rps=reqs / length,
                    fps=fails / length,
                    p50_ms=p95 / 2,
                    p95_ms=p95,
                    p99_ms=p95,
                    total_requests=total_r,
                    total_failures=total_f,
                )
            )
    return rows


def _rates(t0: float, per_step: list[float], length: float) -> list[ActionRate]:
    return [
        ActionRate(t=t0 + i * length + s, actions_per_s=rate, by_type={})
        for i, rate in enumerate(per_step)
        for s in range(1, int(length) + 1)
    ]


def _windows(shape: StepShape, t0: float) -> list[StepWindow]:
    """Steps whose users ran at once, back to back from t0."""
    length = shape.step_seconds
    return [
        StepWindow(
            step=i + 1,
            users=shape.users(i),
            requested_at=t0 + i * length,
            ready_at=t0 + i * length,
            ended_at=t0 + (i + 1) * length,
        )
        for i in range(shape.steps)
    ]


def test_capacity_stops_at_the_first_step_that_breaks_its_slo(tmp_path: Path) -> None:
    op, t0, length = "start_and_complete", 1000.0, 10.0
    shape = StepShape(step_start=2, step_users=2, steps=3, step_seconds=length)
    settings = RunSettings(scenario=op, out_dir=tmp_path, slo_p95_ms=500, slo_failure_ratio=0.01)
    # Step 2 breaks the p95 SLO; step 3 holds again at a higher rate, but the run had already
    # found its limit: step 3 must not become the capacity.
    history = _history(op, t0, [(50, 0, 100.0), (80, 0, 900.0), (90, 0, 100.0)], length)
    rates = _rates(t0, [40.0, 60.0, 80.0], length)
    cap = capacity_steps(_windows(shape, t0), history, rates, (op,), settings)
    assert [s.within_slo for s in cap.steps] == [True, False, True]
    assert cap.breaking_step is not None and cap.breaking_step.step == 2
    assert cap.best_step is not None and cap.best_step.step == 1
    assert cap.max_sustained_actions_per_s == 40.0


def test_a_step_whose_operations_failed_is_the_limit(tmp_path: Path) -> None:
    op, t0, length = "start_and_complete", 1000.0, 10.0
    shape = StepShape(step_start=2, step_users=2, steps=2, step_seconds=length)
    settings = RunSettings(scenario=op, out_dir=tmp_path, slo_p95_ms=500, slo_failure_ratio=0.5)
    history = _history(op, t0, [(50, 0, 100.0), (50, 50, 100.0)], length)
    rates = _rates(t0, [40.0, 1.0], length)
    cap = capacity_steps(_windows(shape, t0), history, rates, (op,), settings)
    assert cap.breaking_step is not None and cap.breaking_step.step == 2
    assert cap.breaking_step.failure_ratio == 1.0
    assert cap.max_sustained_actions_per_s == 40.0


def test_a_step_counts_from_its_users_running_and_an_unready_one_has_no_figures(
    tmp_path: Path,
) -> None:
    """A step is evaluated over the window its shape recorded, from its users all running (8 s
    after it was asked for here, more than a step on a busy machine), never from when it was
    asked for; a step whose users never ran is the harness not ready: no operations, neither
    held nor the limit, and the steps after it are still judged."""
    op, length = "start_and_complete", 6.0
    shape = StepShape(step_start=2, step_users=2, steps=3, step_seconds=length)
    settings = RunSettings(scenario=op, out_dir=tmp_path, slo_p95_ms=500, slo_failure_ratio=0.01)
    waiting = [
        HistoryRow(t=1000.0 + s, users=0, name=op, rps=0, fps=0, p50_ms=None, p95_ms=None,
                   p99_ms=None, total_requests=0, total_failures=0)
        for s in range(8)
    ]  # fmt: skip
    ready = 1008.0
    history = waiting + _history(op, ready, [(30, 0, 100.0), (60, 0, 100.0)], length)
    rates = _rates(ready, [20.0, 40.0], length)
    timeline = ShapeTimeline(
        steps=[
            StepWindow(step=1, users=2, requested_at=1000.0, ready_at=ready, ended_at=ready + 6),
            StepWindow(step=2, users=4, requested_at=ready + 6, ready_at=ready + 6,
                       ended_at=ready + 12),
            StepWindow(step=3, users=6, requested_at=ready + 12, ended_at=ready + 14),
        ]
    )  # fmt: skip
    shape_timeline_file(tmp_path).write_text(timeline.model_dump_json())
    assert load_start(tmp_path, history, 0.0) == 1000.0
    windows = step_windows(tmp_path, shape)
    assert windows == timeline.steps
    cap = capacity_steps(windows, history, rates, (op,), settings)
    assert [s.operations for s in cap.steps] == [30, 60, None]
    assert [s.harness_ready for s in cap.steps] == [True, True, False]
    assert cap.breaking_step is None and cap.best_step == cap.steps[1]
    # A step the shape never reached (the run was cut short) is not ready either.
    shape_timeline_file(tmp_path).write_text(ShapeTimeline(steps=timeline.steps[:1]).model_dump_json())
    assert [w.ready_at is not None for w in step_windows(tmp_path, shape)] == [True, False, False]
