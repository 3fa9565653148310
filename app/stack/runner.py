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
from rich.table import Table

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


def run_main_job(name: str, *, exit_when_done: bool, headless: bool, console: Console) -> None:
    from app.domains.sample.starter import run_sample
    from app.platform.client import HaulClient, connect

    with console.status("starting the dev cluster (Temporal dev server + Postgres) ..."):
        rec = cluster.up(name, "dev", headless=headless)
    applied = migrate(rec.dsn())
    console.print(f"cluster {rec.name!r} up; {len(applied)} migration(s) applied")
    with console.status("starting the worker ..."):
        worker_pid = start_worker(rec)

    async def workload() -> list[tuple[str, str, str]]:
        client = await connect(rec.name, config_file=str(cluster.profile_file()))
        return await run_sample(HaulClient(client), ["world", "carrier-ops"])

    try:
        with console.status("running the sample workload ..."):
            rows = asyncio.run(workload())
        table = Table("workflow ID", "kind", "result", title="sample workload")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        if rec.ui_url:
            console.print(
                f"Temporal UI: {rec.ui_url}/namespaces/{cluster.app_namespace(rec)}/workflows"
            )
        console.print(f"frontend {rec.frontend}  metrics {rec.metrics_url}")
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
