"""`haul loadtest ceiling`: three contenders on one dev cluster, and the Go reference's build.

The short run asserts what a reader of ceiling.json relies on: every contender ran, the
server's action count matches each contender's histories, each process's CPU was measured and
the ratios are the ones the figures give. No assertion is about speed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from app import versions
from app.loadtest import goref
from app.loadtest.ceiling import CONTENDERS, CROSS, WorkerGone, process_cpu, ratios
from app.loadtest.models import CeilingReport, ContenderRun, RunReport
from app.stack.builds import BuildError
from app.stack.registry import ClusterRecord


def _haul(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
    )


def _goref_workers(port: int) -> list[psutil.Process]:
    """Go reference workers connected to the cluster's frontend port."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = proc.info["cmdline"] or []
        ours = len(cmd) > 1 and Path(cmd[0]).name == "goref" and cmd[1] == "worker"
        if ours and any(arg.endswith(f":{port}") for arg in cmd):
            found.append(proc)
    return found


def test_ceiling_short_run_reports_three_contenders_and_the_cross_pairings(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    args = ["--duration", "4s", "--concurrency", "4", "--rounds", "1", "--cross"]
    done = _haul("loadtest", "ceiling", *args, "--target", lt_cluster.name, "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Locust / bare" in done.stdout and "bare / Go" in done.stdout
    report = CeilingReport.read(next(tmp_path.glob("ceiling-*/ceiling.json")))
    assert [r.contender for r in report.runs] == [*CONTENDERS, *CROSS]
    assert "split of bare / Go" in done.stdout
    for run in report.runs:
        assert run.workflows > 0, run
        # The server's count is explained by this contender's histories, type by type.
        assert run.accounting and not run.flagged(), run.accounting
        assert run.actions == run.history_actions
        assert run.actions["grpc_StartWorkflowExecution"] == run.history_runs
        assert run.actions["command_ScheduleActivityTask"] == run.history_runs
        assert run.worker_cpu_s > 0 and run.starter_cpu_s > 0, run
        assert run.worker_cpu_per_1k > 0 and run.p50_ms is not None
    go, bare, locust, bare_on_go, go_on_haul = report.runs
    # A starter awaits every workflow it started, so none is left out of its histories. The
    # cross pairings complete too: each SDK's worker reads the other SDK's starts.
    for run in (go, bare, bare_on_go, go_on_haul):
        assert run.history_runs == run.workflows + run.failures
        assert run.failures == 0, run
    assert RunReport.read(locust.locust_report or "").run_tag == locust.run_tag
    assert report.ratios.bare_over_go == pytest.approx(bare.wf_per_s / go.wf_per_s)
    assert report.ratios.locust_over_bare == pytest.approx(locust.wf_per_s / bare.wf_per_s)
    assert report.ratios.python_worker_cpu_over_go == pytest.approx(
        bare.worker_cpu_per_1k / go.worker_cpu_per_1k
    )
    assert report.medians["go"].wf_per_s == go.wf_per_s
    # The split of bare/Go: the same Go worker under each starter, the same Go starter on
    # each worker.
    assert report.ratios.bare_starter_over_go_starter == pytest.approx(
        bare_on_go.wf_per_s / go.wf_per_s
    )
    assert report.ratios.haul_worker_over_go_worker == pytest.approx(
        go_on_haul.wf_per_s / go.wf_per_s
    )
    # Each pairing's worker CPU is its own worker's: the Go worker's for bare-on-go.
    assert bare_on_go.worker_cpu_s > 0 and go_on_haul.worker_cpu_s > 0
    # The Go worker the command started is gone with it.
    assert not _goref_workers(lt_cluster.port("frontend")), "the ceiling left its Go worker running"


def _broken_copy(tmp_path: Path) -> Path:
    src = tmp_path / "goref"
    shutil.copytree(goref.default_source(), src)
    (src / "broken.go").write_text("package main\n\nfunc broken() { return 1 }\n")
    return src


def test_failed_go_build_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAUL_CACHE", str(tmp_path / "cache"))
    src = _broken_copy(tmp_path)
    with pytest.raises(BuildError) as err:
        goref.binary(src)
    text = str(err.value)
    assert "building the Go reference" in text and "broken.go" in text
    # A failed build leaves nothing behind that a later run would take for a binary.
    assert not list((tmp_path / "cache").glob("goref-*/goref"))


def test_missing_go_or_source_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAUL_CACHE", str(tmp_path / "cache"))
    with pytest.raises(BuildError, match="no Go reference source"):
        goref.binary(tmp_path / "nowhere")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match="`go` was not found"):
        goref.binary(goref.default_source())


def test_built_reference_is_reused_without_go(monkeypatch: pytest.MonkeyPatch) -> None:
    first = goref.binary()  # builds into the shared cache once, or finds it there
    monkeypatch.setenv("PATH", "/nonexistent")
    assert goref.binary() == first


def test_ceiling_refuses_a_broken_build_before_any_load(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    src = _broken_copy(tmp_path)
    done = _haul(
        "loadtest",
        "ceiling",
        "--target",
        lt_cluster.name,
        "--out",
        str(tmp_path / "out"),
        "--goref-src",
        str(src),
        env={"HAUL_CACHE": str(tmp_path / "cache")},
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "the Go reference could not be built" in done.stdout + done.stderr
    assert not (tmp_path / "out").exists(), "no contender may run without the Go reference"


def test_go_reference_uses_the_pinned_sdk() -> None:
    go_mod = (goref.default_source() / "go.mod").read_text()
    assert f"go.temporal.io/sdk v{versions.TEMPORAL_GO_SDK}\n" in go_mod


def test_go_starter_that_cannot_connect_says_where(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RuntimeError) as err:
        asyncio.run(
            goref.run_starter(
                goref.binary(),
                address=f"127.0.0.1:{port}",
                namespace="haul",
                concurrency=1,
                duration=1.0,
                tag="unreachable",
                out=tmp_path,
            )
        )
    assert f"connecting to 127.0.0.1:{port}" in str(err.value)


def test_ceiling_needs_a_local_cluster(tmp_path: Path) -> None:
    done = _haul("loadtest", "ceiling", "--target", "no-such-cluster", "--out", str(tmp_path))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'no-such-cluster' is not a local cluster" in done.stderr
    assert not list(tmp_path.iterdir()), "nothing may run against an unknown target"


def test_a_worker_gone_mid_run_stops_the_ceiling_clearly() -> None:
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_cpu(live.pid) >= 0.0
    finally:
        live.kill()  # the worker dies during the run
        live.wait()
    with pytest.raises(WorkerGone, match=rf"the haul worker \(pid {live.pid}\) is not running"):
        process_cpu(live.pid, "haul worker")


def _run(contender: str, wf_per_s: float) -> ContenderRun:
    return ContenderRun.model_validate(
        {
            "contender": contender,
            "round": 1,
            "run_tag": contender,
            "workflows": 10,
            "failures": 0,
            "seconds": 1.0,
            "workflows_in_window": 10,
            "wf_per_s": wf_per_s,
            "actions": {},
            "actions_per_s": 0.0,
            "history_actions": {},
            "history_runs": 10,
            "accounting": [],
            "p50_ms": None,
            "p95_ms": None,
            "worker_cpu_s": 1.0,
            "starter_cpu_s": 1.0,
            "worker_cpu_per_1k": 1.0,
            "starter_cpu_per_1k": 1.0,
        }
    )


def test_a_run_without_the_cross_pairings_claims_no_split() -> None:
    plain = [_run("go", 10.0), _run("bare", 8.0), _run("locust", 8.0)]
    r = ratios(plain)
    assert r.bare_over_go == pytest.approx(0.8)
    assert r.bare_starter_over_go_starter is None and r.haul_worker_over_go_worker is None
    r = ratios([*plain, _run("bare-on-go", 9.0), _run("go-on-haul", 8.5)])
    assert r.bare_starter_over_go_starter == pytest.approx(0.9)
    assert r.haul_worker_over_go_worker == pytest.approx(0.85)
