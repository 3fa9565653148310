"""The benchmarks check their counts: the server's `action` counter against the histories of
the runs they started, exiting 1 on a mismatch. The check alone, then a tiny run of each on a
dev stack of its own, so the check runs against a real server."""

from __future__ import annotations

import os
import subprocess
import sys

from loadtest.bench_backends import Result
from loadtest.bench_parcel import Case

GREETING = {"grpc_StartWorkflowExecution": 5, "command_ScheduleActivityTask": 5}


def test_a_backend_whose_count_the_histories_do_not_explain_is_a_problem() -> None:
    def result(server: dict[str, int], history: dict[str, int], found: int) -> Result:
        return Result("dev", 5, 1.0, server, [0.1] * 5, history, found)

    assert result(GREETING, GREETING, 5).problems() == []
    extra = {**GREETING, "command_StartTimer": 3}
    (line,) = result(extra, GREETING, 5).problems()
    assert line.startswith("dev: command_StartTimer: the server counted 3")
    (line,) = result(GREETING, GREETING, 4).problems()
    assert line == "dev: 5 workflows ran, histories hold 4"


def test_a_parcel_case_checks_the_histories_and_the_formula() -> None:
    case = Case(charges=10, batch_size=1, invoices=2, groups=1)
    case.actions = {k: v for k, v in case.expected.items() if v}
    case.history = dict(case.actions)
    assert case.problems() == []
    case.history["command_ScheduleActivityTask"] -= 2
    (line,) = case.problems()
    assert line.startswith("charges 10, batch 1: command_ScheduleActivityTask: the server counted")
    case.history = dict(case.actions)
    case.actions["grpc_StartWorkflowExecution"] = 2
    case.history["grpc_StartWorkflowExecution"] = 2
    (line,) = case.problems()
    assert "grpc_StartWorkflowExecution: server counted 2, the formula says 1" in line
    # a marker beyond the packed-runs patch's one per splitter run is a mismatch too
    assert case.expected["command_BatchMarkers"] == case.runs == 1
    case.actions = {k: v for k, v in case.expected.items() if v} | {"command_BatchMarkers": 2}
    case.history = dict(case.actions)
    (line,) = case.problems()
    assert "command_BatchMarkers: server counted 2, the formula says 1" in line


def test_the_parcel_formula_packs_small_invoices_and_gives_large_ones_a_child() -> None:
    """The README's worked figures: 200 invoices of 10 charges in pages of 100 are 2 runs of
    100; 3 invoices of 10,000 charges are 3 children of their own."""
    small = Case(charges=10, batch_size=1_000, invoices=200, groups=1)
    assert small.children() == [100, 100]
    assert small.expected["command_StartChildWorkflowExecution"] == 2
    # 2 runs x (normalize_run, queue_run, 1 audit) + 200 status activities + index, finish and
    # 2 page reads
    assert small.expected["command_ScheduleActivityTask"] == 2 * 3 + 200 + 4
    assert small.expected["command_BatchMarkers"] == 1  # the packed-runs patch, one run
    assert sum(small.expected.values()) / 200 <= 3
    large = Case(charges=10_000, batch_size=1_000, invoices=3, groups=1_000)
    assert large.children() == [1, 1, 1]
    assert large.expected["command_ScheduleActivityTask"] == 3 * 3 + 3 + 3
    assert 1000 * sum(large.expected.values()) / 3 / 10_000 <= 1
    odd = Case(charges=4_000, batch_size=10, invoices=7, groups=400, page_size=5)
    assert odd.children() == [2, 2, 1, 2]  # budget 10,000 -> 2 a run; pages of 5 and 2


def _bench(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a benchmark as its README says, its cluster in this session's port range."""
    env = {
        **os.environ,
        "COLUMNS": "250",
        "HAUL_PORT_BASE": os.environ.get("HAUL_LT_PORT_BASE", "27400"),
    }
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )


def test_bench_parcel_checks_a_tiny_file_against_its_histories() -> None:
    done = _bench(
        "loadtest.bench_parcel", "--charges", "10", "--batch-sizes", "1",
        "--min-invoices", "2", "--max-invoices", "2", "--no-largest",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "server counts match the histories and the formula in every case" in done.stdout


def test_bench_backends_short_dev_run_checks_its_histories() -> None:
    done = _bench(
        "loadtest.bench_backends", "--backends", "dev", "--workflows", "5", "--concurrency", "2"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "server counts match the histories on every backend" in done.stdout
