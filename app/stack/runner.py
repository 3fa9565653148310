"""The main job (`haul run`) and worker processes attached to a local cluster.

A worker started for a cluster is one more pid in its registry record, so `haul stack down`
stops it with the rest.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time

import httpx
from rich.console import Console

from app.db.migrate import migrate
from app.stack import cluster
from app.stack.procs import StartupError, log_tail, pid_alive, spawn, stop_pid
from app.stack.registry import ClusterRecord, Registry


def worker_env(rec: ClusterRecord) -> dict[str, str]:
    """Environment that points a worker or client process at a local cluster."""
    return {
        "TEMPORAL_CONFIG_FILE": str(cluster.profile_file()),
        "TEMPORAL_PROFILE": rec.name,
        "HAUL_DATABASE_URL": rec.dsn(),
        "HAUL_BLOB_DIR": str(rec.path / "blobs"),
        "HAUL_WORKER_HEALTH_PORT": str(rec.port("worker_health")),
    }


def start_worker(rec: ClusterRecord, *, role: str = "worker", timeout: float = 60.0) -> int:
    """Start `haul worker` for the cluster as its own process; wait for /healthz."""
    log = rec.path / "logs" / f"{role}.log"
    pid = spawn([sys.executable, "-m", "app", "worker"], log, env=worker_env(rec))
    reg = Registry()
    with reg.locked():
        fresh = reg.get(rec.name) or rec
        fresh.pids[role] = pid
        reg.put(fresh)
    rec.pids[role] = pid
    url = f"http://127.0.0.1:{rec.port('worker_health')}/healthz"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            break
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return pid
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop_pid(pid)
    raise StartupError(f"the worker did not become healthy; its log says:\n{log_tail(log)}")


def stop_worker(rec: ClusterRecord, role: str = "worker", *, sig: int = signal.SIGTERM) -> None:
    """Stop a worker started by start_worker and forget its pid."""
    pid = rec.pids.pop(role, None)
    if pid is not None:
        stop_pid(pid, sig=sig)
    reg = Registry()
    with reg.locked():
        fresh = reg.get(rec.name)
        if fresh is not None and fresh.pids.pop(role, None) is not None:
            reg.put(fresh)


SAMPLE_FILE = "edi210_sample.edi"


def prepare_app_db(rec: ClusterRecord) -> tuple[list[str], int]:
    """Apply pending migrations and load the sample contract rates (both idempotent), so the
    cluster's workers can ingest. Returns the migrations applied and the rates loaded."""
    import psycopg

    from app.domains.rate_audit.activities import seed_contracts
    from app.domains.rate_audit.rates import sample_contracts

    applied = migrate(rec.dsn())
    with psycopg.connect(rec.dsn(), autocommit=True) as conn:
        contracts = seed_contracts(conn, sample_contracts())
    return applied, contracts


def run_main_job(name: str, *, exit_when_done: bool, headless: bool, console: Console) -> None:
    """Dev stack, migrations, sample contracts, a worker, then a shipped carrier file through
    the parcel pipeline, with its progress and summary."""
    from importlib import resources

    from app.domains.parcel import store as parcel_store
    from app.domains.parcel.blobstore import LocalBlobStore
    from app.domains.parcel.commands import print_summary
    from app.domains.parcel.models import IngestProgress, IngestSummary
    from app.domains.parcel.starter import ingest
    from app.platform.client import HaulClient, connect

    with console.status("starting the dev cluster (Temporal dev server + Postgres) ..."):
        rec = cluster.up(name, "dev", headless=headless)
    applied, contracts = prepare_app_db(rec)
    console.print(
        f"cluster {rec.name!r} up; {len(applied)} migration(s) applied; "
        f"{contracts} sample contract rates loaded"
    )
    with console.status("starting the worker ..."):
        worker_pid = start_worker(rec)

    sample = resources.files("app.domains.parcel").joinpath("samples", SAMPLE_FILE)

    async def workload() -> tuple[IngestSummary, bool]:
        client = await connect(rec.name, config_file=str(cluster.profile_file()))
        database = parcel_store.Database(rec.dsn())
        try:
            with (
                resources.as_file(sample) as path,
                console.status(f"ingesting {SAMPLE_FILE} ...") as status,
            ):

                def show(p: IngestProgress) -> None:
                    status.update(
                        f"ingesting {SAMPLE_FILE}: {p.done + p.failed}/{p.invoices} invoices, "
                        f"{p.running} running ({p.phase})"
                    )

                return await ingest(
                    HaulClient(client), database, LocalBlobStore(rec.path / "blobs"), path,
                    on_progress=show,
                )
        finally:
            database.close()

    try:
        summary, ran = asyncio.run(workload())
        print_summary(console, summary, again=not ran)
        if rec.ui_url:
            console.print(
                f"Temporal UI: {rec.ui_url}/namespaces/{cluster.app_namespace(rec)}/workflows"
            )
        console.print(f"frontend {rec.frontend}  metrics {rec.metrics_url}")
        console.print(
            "ingest another file with `haul ingest parcel FILE --cluster "
            f"{rec.name}` while this runs"
        )
        if exit_when_done:
            return
        console.print("serving; press Ctrl-C to stop the worker and the cluster")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.is_set() and pid_alive(worker_pid):
                stop.wait(1)
        except KeyboardInterrupt:
            pass
    finally:
        stop_worker(rec)
        if exit_when_done or not os.environ.get("HAUL_KEEP_CLUSTER"):
            cluster.down(rec.name)
