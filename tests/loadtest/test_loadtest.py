"""Short headless load tests against the dev stack: reports, action accounting, concurrency,
SLO gates, and the capacity command (the ceiling's tests are in test_ceiling.py). No assertion
is about speed."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from app.core import envconfig
from app.core.procs import pid_alive, spawn, stop_pid
from app.loadtest import scenarios
from app.loadtest.locust_worker import worker_argv
from app.loadtest.models import RunReport, ShapeTimeline
from app.loadtest.report import read_history
from app.loadtest.runner import resolve_target, run_load
from app.loadtest.settings import LoadSettings, RunSettings
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import worker_env as worker_env_of
from tests.loadtest.conftest import SCENARIO_SECONDS


def _haul(
    *args: str, timeout: float = 900, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess (the tests' HAUL_HOME is inherited). The deadline only
    catches a hang: on a loaded machine one short capacity run took over 4 minutes."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**(os.environ if env is None else env), "COLUMNS": "200"},
    )


def _check_report_files(result: RunReport) -> None:
    out = result.out_dir
    html = (out / "report.html").read_text()
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") >= 4  # actions/s, latency, requests and failures, actions by type
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust.json", "report.json"):
        assert (out / name).stat().st_size > 0, name
    assert RunReport.read(out / "report.json") == result


def _check_accounting(result: RunReport) -> None:
    compared = [r for r in result.accounting if r.source in ("history", "client")]
    assert compared, f"nothing to compare: {result.accounting}"
    for row in compared:
        assert row.diff_pct is not None and row.diff_pct <= 2.0, f"disagree: {row}"
    assert not result.summary.accounting_flags
    # Every billable type the server counted for this namespace is one histories explain or
    # the harness counted, except types only the server can see; the gates say so too.
    assert not [r for r in result.accounting if r.source == "unexplained"], result.accounting
    accounting = [g for g in result.gates if g.kind == "accounting"]
    assert [g.passed for g in accounting] == [True, True], accounting
    assert result.histories.runs > 0


@pytest.mark.parametrize("name", ["start_and_complete", "signal_fan_in", "parcel_ingest", "mixed"])
async def test_scenario_runs_and_accounts_within_two_percent(
    lt_cluster: ClusterRecord, tmp_path: Path, name: str
) -> None:
    target = resolve_target(lt_cluster.name)
    settings = RunSettings(
        scenario=name,
        users=4,
        spawn_rate=4,
        duration=SCENARIO_SECONDS,
        out_dir=tmp_path,
        load=LoadSettings(entities=4, burst=4),
        slo_p95_ms=120_000,
    )
    result = await run_load(target, settings)
    _check_report_files(result)
    _check_accounting(result)
    assert result.summary.operations > 0
    # The default failure SLO (1%) holds, and every business operation succeeded.
    assert result.passed, [g for g in result.gates if not g.passed]
    for op in scenarios.get(name).operations:
        assert result.harness.operations[op].failed == 0, result.harness.operations
    assert (result.settings.load.entities, result.settings.load.burst) == (4, 4)
    server = result.server_actions
    if name == "start_and_complete":
        # Each operation is exactly one start and one activity.
        assert server["grpc_StartWorkflowExecution"] == server["command_ScheduleActivityTask"]
        assert result.summary.actions_per_operation == pytest.approx(2.0, abs=0.05)
    if name in ("signal_fan_in", "mixed"):
        assert server["grpc_SignalWithStartWorkflowExecution"] > 0
    if name == "parcel_ingest":
        # Each file: one splitter start, one packed run for its small invoices, one
        # shipment-job signal-with-start per invoice (every invoice is its own shipment), and
        # the packed-runs patch's marker and search-attribute upsert.
        ops = result.harness.operations["parcel_ingest"]
        assert ops.failed == 0 and ops.succeeded > 0
        invoices = result.settings.load.parcel_invoices * ops.succeeded
        assert server["grpc_StartWorkflowExecution"] == ops.succeeded
        assert server["command_StartChildWorkflowExecution"] == ops.succeeded
        assert server["grpc_SignalWithStartWorkflowExecution"] == invoices
        # The README's "17 actions per file" at the default file (3 invoices of 2 groups),
        # from the server's counter and from the histories alike.
        defaults = LoadSettings()
        assert (defaults.parcel_invoices, defaults.parcel_groups) == (3, 2)
        assert result.settings.load.parcel_invoices == defaults.parcel_invoices
        assert result.settings.load.parcel_groups == defaults.parcel_groups
        assert sum(server.values()) == 17 * ops.succeeded, server
        assert sum(result.history_actions.values()) == 17 * ops.succeeded, result.history_actions
    if name == "mixed":
        assert result.harness.operations["parcel_ingest"].succeeded > 0
        queries = result.harness.queries_succeeded
        assert queries > 0
        assert server.get("grpc_QueryWorkflow") == queries
    assert result.harness.connect_calls_per_process == [1]


async def test_one_process_holds_100_calls_in_flight_on_one_connect(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    assert scenarios.get("timer").user_classes == ("TimerUser",)
    target = resolve_target(lt_cluster.name)
    settings = RunSettings(
        scenario="timer",
        users=200,
        spawn_rate=200,
        duration=6,
        out_dir=tmp_path,
        slo_p95_ms=120_000,
    )
    result = await run_load(target, settings)
    harness = result.harness
    assert harness.processes == 1
    assert harness.max_in_flight_per_process[0] >= 100, harness
    assert harness.connect_calls_per_process == [1], harness
    _check_accounting(result)


def test_slo_gate_sets_the_exit_code(lt_cluster: ClusterRecord, tmp_path: Path) -> None:
    common = ["--scenario", "start_and_complete", "--users", "2", "--spawn-rate", "2"]
    common += ["--duration", "4s", "--target", lt_cluster.name, "--out", str(tmp_path)]
    impossible = _haul("loadtest", "run", *common, "--slo-p95-ms", "0.001")
    assert impossible.returncode == 1, impossible.stdout + impossible.stderr
    assert "FAIL p95 start_and_complete" in impossible.stdout
    generous = _haul("loadtest", "run", *common, "--slo-p95-ms", "600000")
    assert generous.returncode == 0, generous.stdout + generous.stderr


def _capacity(cluster: str, out: Path, p95_ms: str) -> subprocess.CompletedProcess[str]:
    steps = ["--start-users", "2", "--step-users", "2", "--steps", "2", "--step-duration", "5s"]
    return _haul(
        "loadtest", "capacity", *steps, "--target", cluster, "--out", str(out),
        "--slo-p95-ms", p95_ms,
    )  # fmt: skip


def test_capacity_command_runs(lt_cluster: ClusterRecord, tmp_path: Path) -> None:
    done = _capacity(lt_cluster.name, tmp_path, "600000")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "highest sustained within SLOs" in done.stdout
    report = RunReport.read(next(tmp_path.glob("*/report.json")))
    assert report.capacity is not None
    steps = report.capacity.steps
    assert [s.users for s in steps] == [2, 4]
    # The default failure SLO (1%) and a p95 no dev run reaches: every step holds.
    assert all(s.within_slo and s.operations > 0 for s in steps), steps
    assert report.capacity.breaking_step is None
    assert report.capacity.max_sustained_actions_per_s == max(s.actions_per_s for s in steps)
    # What it ran on, read from the live server, and where each step's CPU went.
    assert "server configuration" in done.stdout
    assert report.server is not None and report.server.shards is not None
    assert report.server.shards >= 1 and report.server.server_version
    assert report.server.persistence_pool.startswith("dev server")
    for step in steps:
        assert step.cpu is not None and step.cpu.limit, step
        assert {"server", "worker"} <= set(step.cpu.by_role), step.cpu
        assert step.cpu.by_role["worker"] > 0, step.cpu


def test_capacity_stops_at_the_step_that_breaks_its_slo(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    """No operation finishes in a microsecond: the first step breaks the p95 SLO, so it is the
    limit, the later step is never the capacity, and with no step held the command fails."""
    done = _capacity(lt_cluster.name, tmp_path, "0.001")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "broke at step 1 (2 users): the limit" in done.stdout
    assert "capacity: no step held the SLOs" in done.stdout + done.stderr
    report = RunReport.read(next(tmp_path.glob("*/report.json")))
    assert report.capacity is not None
    first = report.capacity.steps[0]
    assert first.operations > 0 and not first.within_slo
    assert report.capacity.breaking_step == first
    assert report.capacity.best_step is None
    assert report.capacity.max_sustained_actions_per_s == 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_distributed_run_counts_every_worker(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    """The load generator's pods, rehearsed: two `haul loadtest locust-worker` processes and a
    `haul loadtest run --expect-workers 2` master, configured only as the EKS Deployments are
    (a temporal.toml profile, a dns+ metrics URL, HAUL_LT_* variables). The workers know
    nothing of the target: it comes from the master. Only the workers hold the app database
    and blob store that parcel_ingest needs; the master never sees them."""
    port = _free_port()
    profiles = tomllib.loads(Registry().profile_file.read_text())["profile"]
    mine = profiles[lt_cluster.name]
    toml = tmp_path / "temporal.toml"
    eks = envconfig.Profile(name="eks-a", address=mine["address"], namespace=mine["namespace"])
    envconfig.write(toml, [eks])
    local = ("TEMPORAL_", "HAUL_LT_", "HAUL_DATABASE_URL", "HAUL_BLOB_DIR")
    pod = {k: v for k, v in os.environ.items() if not k.startswith(local)}
    pod["TEMPORAL_CONFIG_FILE"] = str(toml)
    app = {k: v for k, v in worker_env_of(lt_cluster).items() if k.startswith("HAUL_")}
    worker_env = {
        **pod,
        "HAUL_DATABASE_URL": app["HAUL_DATABASE_URL"],
        "HAUL_BLOB_DIR": app["HAUL_BLOB_DIR"],
        "HAUL_LT_MASTER_HOST": "127.0.0.1",
        "HAUL_LT_MASTER_PORT": str(port),
    }
    argv = [sys.executable, "-m", "app", "loadtest", "locust-worker", "--runs", "3"]
    pids = [
        spawn(argv, tmp_path / f"locust-worker-{i}.log", env=worker_env, cwd=tmp_path)
        for i in range(2)
    ]
    master_env = {
        **pod,
        "HAUL_LT_TARGET": "eks-a",
        "HAUL_LT_METRICS_URL": "dns+" + lt_cluster.metrics_url,
    }
    try:
        # Three runs on the same two long-lived workers, as on EKS: each run gets fresh
        # worker processes (one connection each) and only its own counts.
        runs = {
            "start_and_complete": ["run", "-u", "4", "-r", "4", "-t", f"{SCENARIO_SECONDS:.0f}s"],
            "parcel_ingest": ["run", "-u", "4", "-r", "4", "-t", "10s"],
            "capacity": ["capacity", "--start-users", "2", "--step-users", "2", "--steps", "2"]
            + ["--step-duration", "6s"],
        }
        for label, command in runs.items():
            scenario = "start_and_complete" if label == "capacity" else label
            run = ["loadtest", *command, "--scenario", scenario, "--expect-workers", "2"]
            run += ["--master-bind-port", str(port), "--out", str(tmp_path / label)]
            # A worker process starts in well over a minute on a loaded machine.
            run += ["--slo-p95-ms", "120000", "--no-worker", "--workers-max-wait", "600s"]
            done = _haul(*run, env=master_env)
            assert done.returncode == 0, done.stdout + done.stderr
            (report_json,) = (tmp_path / label).glob("*/report.json")
            result = RunReport.read(report_json)
            assert result.target == "eks-a"
            _check_report_files(result)
            _check_accounting(result)
            harness = result.harness
            assert harness.processes == 2, harness
            assert harness.connect_calls_per_process == [1, 1], harness
            ops = harness.operations[scenario]
            assert ops.failed == 0 and ops.succeeded > 0
            # Every worker's own count came home (Locust's stats stop recording in the stop
            # timeout).
            assert 0 < result.summary.operations <= ops.succeeded
            server = result.server_actions
            if label == "capacity":
                # The master held the last step and ended the run itself.
                assert result.capacity is not None
                steps = result.capacity.steps
                assert [row.users for row in steps] == [2, 4], steps
                assert all(row.operations > 0 for row in steps), steps
            if scenario == "start_and_complete":
                # Two actions per operation holds only if no worker's count was lost.
                assert result.summary.actions_per_operation == pytest.approx(2.0, abs=0.05)
            else:
                # The ingest workflows are found through the root IDs the workers sent home:
                # one start and one packed run per file (its invoices fit one run at the file
                # size the master's settings gave the workers).
                assert server["grpc_StartWorkflowExecution"] == ops.succeeded
                assert server["command_StartChildWorkflowExecution"] == ops.succeeded
                assert result.histories.runs >= ops.succeeded * 2
        for pid in pids:  # each served its three runs and left
            deadline = time.monotonic() + 120
            while pid_alive(pid) and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            assert not pid_alive(pid)
        logs = [(tmp_path / f"locust-worker-{i}.log").read_text() for i in range(2)]
        assert all("served 3 run(s)" in log for log in logs), logs
    finally:
        for pid in pids:
            stop_pid(pid)


SLOW_SPAWN = Path(__file__).with_name("slow_spawn.py")


def _slow_worker(tmp_path: Path, port: int, delay: float) -> int:
    """One plain Locust worker that holds its spawn for `delay` seconds (slow_spawn.py)."""
    argv = worker_argv("127.0.0.1", port)
    files = argv.index("-f") + 1
    argv[files] = f"{argv[files]},{SLOW_SPAWN}"
    scratch = tmp_path / "worker-out"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "HAUL_LT_"))}
    env |= {"HAUL_LT_OUT": str(scratch), "HAUL_TEST_SPAWN_DELAY": str(delay)}
    return spawn(argv, tmp_path / "slow-worker.log", env=env, cwd=tmp_path)


def _slow_capacity(cluster: str, tmp_path: Path, *extra: str) -> tuple[int, str, RunReport]:
    """A two-step capacity run of 6 s steps on one slow worker; the worker's spawn takes
    longer than a step."""
    port = _free_port()
    pid = _slow_worker(tmp_path, port, delay=8)
    try:
        steps = ["--start-users", "2", "--step-users", "2", "--steps", "2"]
        done = _haul(
            "loadtest", "capacity", *steps, "--step-duration", "6s", "--target", cluster,
            "--expect-workers", "1", "--master-bind-port", str(port), "--no-worker",
            "--workers-max-wait", "600s",
            "--out", str(tmp_path / "out"), "--slo-p95-ms", "120000", *extra,
        )  # fmt: skip
    finally:
        stop_pid(pid)
    (report_json,) = (tmp_path / "out").glob("*/report.json")
    return done.returncode, done.stdout + done.stderr, RunReport.read(report_json)


def test_capacity_step_counts_only_once_its_users_run(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    """A step's clock starts when its users all run, however long the worker takes to spawn
    them: no step is measured without its load (it was: 0 operations, taken for the limit)."""
    code, output, report = _slow_capacity(lt_cluster.name, tmp_path)
    assert code == 0, output
    assert report.capacity is not None
    steps = report.capacity.steps
    assert [s.users for s in steps] == [2, 4], steps
    assert all(s.harness_ready and s.operations and s.operations > 0 for s in steps), steps
    assert all(s.within_slo for s in steps), steps
    # The master waited for the worker's own counts before it quit.
    assert report.harness.processes == 1, report.harness
    # Over each step's window, Locust (the master, from the worker's reports) counted exactly
    # the step's users in every second.
    timeline = ShapeTimeline.read(report.out_dir / "shape-steps.json")
    assert timeline is not None and len(timeline.steps) == 2, timeline
    history = [h for h in read_history(report.out_dir / "locust") if h.name == "Aggregated"]
    for window in timeline.steps:
        assert window.ready_at is not None and window.ended_at is not None, window
        inside = [h for h in history if window.ready_at <= h.t and h.t + 1 <= window.ended_at]
        assert inside and {h.users for h in inside} == {window.users}, (window, inside)


def test_capacity_step_whose_users_never_run_is_harness_not_ready(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    """A step whose users do not all run within --ready-timeout is reported as the harness not
    ready, never as a step of 0 operations that broke the SLOs, and the command fails."""
    code, output, report = _slow_capacity(lt_cluster.name, tmp_path, "--ready-timeout", "2s")
    assert code == 1, output
    assert "harness not ready at step(s) 1" in output
    assert report.capacity is not None
    first = report.capacity.steps[0]
    assert not first.harness_ready and first.operations is None, first
    assert report.capacity.breaking_step != first


async def test_distributed_run_names_the_workers_that_never_came(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    settings = RunSettings(
        scenario="start_and_complete",
        users=2,
        spawn_rate=2,
        duration=5,
        out_dir=tmp_path,
        expect_workers=2,
        master_bind_port=_free_port(),
        workers_max_wait=3,
    )
    with pytest.raises(RuntimeError, match="only some of the 2 Locust workers connected"):
        await run_load(resolve_target(lt_cluster.name), settings)
