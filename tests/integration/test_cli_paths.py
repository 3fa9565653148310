"""The README's command lines, run as a user runs them: `haul ...` in a subprocess.

Each test drives the real CLI against the session's dev cluster (or a throwaway one) and checks
what the command promises: its output, its exit code, and what it changed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from app.core.procs import pid_alive
from app.domains import app_database
from app.formats.generator import Edi210Spec, write_edi210
from app.stack.registry import ClusterRecord, Registry
from app.stack.workers import start_worker, stop_worker

TIMEOUT = 600


def haul(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture(scope="module")
def served_cluster(dev_cluster: ClusterRecord) -> Iterator[ClusterRecord]:
    """The session cluster with its app database prepared and a `haul worker` process."""
    app_database.prepare(dev_cluster.dsn())
    start_worker(dev_cluster, role="cli-worker")
    try:
        yield dev_cluster
    finally:
        stop_worker(dev_cluster, "cli-worker")


def test_ingest_parcel_prints_the_summary_and_a_second_run_is_the_first(
    served_cluster: ClusterRecord, tmp_path: Path
) -> None:
    path = tmp_path / "cli.edi"
    report = write_edi210(path, Edi210Spec(invoices=4, groups_per_invoice=2, seed=7001))
    first = haul("ingest", "parcel", str(path), "--cluster", served_cluster.name)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "completed" in first.stdout
    assert re.search(rf"invoices\s+│?\s*{report.invoices}\b", first.stdout), first.stdout
    again = haul("ingest", "parcel", str(path), "--cluster", served_cluster.name)
    assert again.returncode == 0, again.stdout + again.stderr
    # The title says so (rich may shorten it to the table width).
    assert "parcel ingestion (already" in again.stdout, again.stdout


def test_ingest_parcel_of_a_file_that_is_not_an_invoice_fails_clearly(
    served_cluster: ClusterRecord, tmp_path: Path
) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are meeting notes, not a carrier file\n")
    done = haul("ingest", "parcel", str(path), "--cluster", served_cluster.name)
    assert done.returncode != 0
    assert "rejected" in done.stdout or "error" in done.stdout, done.stdout + done.stderr


def test_failures_list_runs_against_the_cluster_database(served_cluster: ClusterRecord) -> None:
    done = haul("failures", "list", "--cluster", served_cluster.name)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "workflow ID" in done.stdout


def test_db_migrate_by_cluster_and_by_dsn_apply_each_file_once(
    dev_cluster: ClusterRecord,
) -> None:
    scratch = f"scratch_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dev_cluster.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'create database "{scratch}"')
    try:
        by_dsn = haul("db", "migrate", env={"HAUL_DATABASE_URL": dev_cluster.dsn(scratch)})
        assert by_dsn.returncode == 0, by_dsn.stdout + by_dsn.stderr
        applied = int(re.search(r"applied (\d+) migration", by_dsn.stdout).group(1))  # type: ignore[union-attr]
        shipped = len(list((Path(__file__).parents[2] / "migrations" / "postgres").glob("*.sql")))
        assert applied == shipped
        again = haul("db", "migrate", env={"HAUL_DATABASE_URL": dev_cluster.dsn(scratch)})
        assert "applied 0 migration(s)" in again.stdout, again.stdout + again.stderr
        by_cluster = haul("db", "migrate", "--cluster", dev_cluster.name)
        assert by_cluster.returncode == 0 and "applied" in by_cluster.stdout, by_cluster.stderr
    finally:
        with psycopg.connect(dev_cluster.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'drop database "{scratch}"')


def test_the_temporal_cli_reads_the_written_profile(dev_cluster: ClusterRecord) -> None:
    temporal = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    done = subprocess.run(
        [temporal, "operator", "namespace", "list"],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
            "TEMPORAL_CONFIG_FILE": str(Registry().profile_file),
            "TEMPORAL_PROFILE": dev_cluster.name,
        },
    )
    assert done.returncode == 0, done.stderr
    assert "haul" in done.stdout


def test_stack_status_shows_the_ui_and_pids_and_down_purge_deletes_the_data() -> None:
    name = f"it-cli-{uuid.uuid4().hex[:6]}"
    up = haul("stack", "up", "--backend", "dev", "--name", name)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        rec = Registry().get(name)
        assert rec is not None and rec.pids
        status = haul("stack", "status")
        assert status.returncode == 0, status.stderr
        block = status.stdout[status.stdout.index(name):]
        assert rec.ui_url in block
        for role, pid in rec.pids.items():
            assert f"{role}:{pid}" in block
        assert rec.path.is_dir()
    finally:
        down = haul("stack", "down", name, "--purge")
    assert down.returncode == 0, down.stdout + down.stderr
    assert not any(pid_alive(pid) for pid in rec.pids.values())
    assert not rec.path.exists(), "--purge left the cluster's data behind"
    assert Registry().get(name) is None
