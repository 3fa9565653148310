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
from app.loadtest.ceiling import CONTENDERS, WorkerGone, process_cpu
from app.loadtest.models import CeilingReport, RunReport
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


def test_ceiling_short_run_reports_three_contenders(
    lt_cluster: ClusterRecord, tmp_path: Path
) -> None:
    args = ["--duration", "4s", "--concurrency", "4", "--rounds", "1"]
    done = _haul("loadtest", "ceiling", *args, "--target", lt_cluster.name, "--out", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Locust / bare" in done.stdout and "bare / Go" in done.stdout
    report = CeilingReport.read(next(tmp_path.glob("ceiling-*/ceiling.json")))
    assert [r.contender for r in report.runs] == list(CONTENDERS)
    for run in report.runs:
        assert run.workflows > 0, run
        # The server's count is explained by this contender's histories, type by type.
        assert run.accounting and not run.flagged(), run.accounting
        assert run.actions == run.history_actions
        assert run.actions["grpc_StartWorkflowExecution"] == run.history_runs
        assert run.actions["command_ScheduleActivityTask"] == run.history_runs
        assert run.worker_cpu_s > 0 and run.starter_cpu_s > 0, run
        assert run.worker_cpu_per_1k > 0 and run.p50_ms is not None
    go, bare, locust = report.runs
    # A starter awaits every workflow it started, so none is left out of its histories.
    for run in (go, bare):
        assert run.history_runs == run.workflows + run.failures
    assert RunReport.read(locust.locust_report or "").run_tag == locust.run_tag
    assert report.ratios.bare_over_go == pytest.approx(bare.wf_per_s / go.wf_per_s)
    assert report.ratios.locust_over_bare == pytest.approx(locust.wf_per_s / bare.wf_per_s)
    assert report.ratios.python_worker_cpu_over_go == pytest.approx(
        bare.worker_cpu_per_1k / go.worker_cpu_per_1k
    )
    assert report.medians["go"].wf_per_s == go.wf_per_s
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
