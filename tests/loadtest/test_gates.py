"""SLO gates and capacity steps from Locust's rows, with no Locust run: a business operation
that never succeeded fails its gate whatever the failure SLO, and a capacity run stops at its
first failing step and reports it as the limit."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.loadtest.models import ActionRate, Gate, HistoryRow, StatsRow
from app.loadtest.process_files import shape_start_file
from app.loadtest.report import slo_gates
from app.loadtest.runner import capacity_steps, load_start
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


def test_capacity_stops_at_the_first_step_that_breaks_its_slo(tmp_path: Path) -> None:
    op, t0, length = "start_and_complete", 1000.0, 10.0
    shape = StepShape(step_start=2, step_users=2, steps=3, step_seconds=length)
    settings = RunSettings(scenario=op, out_dir=tmp_path, slo_p95_ms=500, slo_failure_ratio=0.01)
    # Step 2 breaks the p95 SLO; step 3 holds again at a higher rate, but the run had already
    # found its limit: step 3 must not become the capacity.
    history = _history(op, t0, [(50, 0, 100.0), (80, 0, 900.0), (90, 0, 100.0)], length)
    rates = _rates(t0, [40.0, 60.0, 80.0], length)
    cap = capacity_steps(shape, t0, history, rates, (op,), settings)
    assert [s.within_slo for s in cap.steps] == [True, False, True]
    assert cap.breaking_step is not None and cap.breaking_step.step == 2
    assert cap.best_step is not None and cap.best_step.step == 1
    assert cap.max_sustained_actions_per_s == 40.0


def test_a_step_whose_operations_failed_is_the_limit(tmp_path: Path) -> None:
    op, t0, length = "start_and_complete", 1000.0, 10.0
    shape = StepShape(step_start=2, step_users=2, steps=2, step_seconds=length)
    settings = RunSettings(scenario=op, out_dir=tmp_path, slo_p95_ms=500, slo_failure_ratio=0.5)
    history = _history(op, t0, [(50, 0, 100.0), (50, 50, 100.0)], length)
    cap = capacity_steps(shape, t0, history, _rates(t0, [40.0, 1.0], length), (op,), settings)
    assert cap.breaking_step is not None and cap.breaking_step.step == 2
    assert cap.breaking_step.failure_ratio == 1.0
    assert cap.max_sustained_actions_per_s == 40.0


def test_steps_start_with_the_shape_not_with_a_waiting_masters_first_rows(
    tmp_path: Path,
) -> None:
    """A master writes stats rows while its workers connect (8 s here, more than a step on a
    busy machine); the steps are timed from the shape's recorded start, or else from the
    first row with users running, never from the first row."""
    op, length = "start_and_complete", 6.0
    shape = StepShape(step_start=2, step_users=2, steps=2, step_seconds=length)
    settings = RunSettings(scenario=op, out_dir=tmp_path, slo_p95_ms=500, slo_failure_ratio=0.01)
    waiting = [
        HistoryRow(t=1000.0 + s, users=0, name=op, rps=0, fps=0, p50_ms=None, p95_ms=None,
                   p99_ms=None, total_requests=0, total_failures=0)
        for s in range(8)
    ]  # fmt: skip
    started = 1008.0
    history = waiting + _history(op, started, [(30, 0, 100.0), (60, 0, 100.0)], length)
    rates = _rates(started, [20.0, 40.0], length)
    for t0 in (load_start(tmp_path, history, 0.0), history[0].t):
        cap = capacity_steps(shape, t0, history, rates, (op,), settings)
        counted = [s.operations for s in cap.steps]
        if t0 == history[0].t:
            assert counted[0] == 0  # the flake: timed from the first row, step 1 saw nothing
        else:
            # Rows are whole seconds: the first with users is at most a second late.
            assert started <= t0 <= started + 1 and all(n > 0 for n in counted), counted
    shape_start_file(tmp_path).write_text("1008.4\n")
    assert load_start(tmp_path, history, 0.0) == 1008.4
