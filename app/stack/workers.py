"""Worker processes attached to a local cluster.

A worker started for a cluster is one more pid in its registry record, so `haul stack down`
stops it with the rest.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping

import httpx

from app.core.procs import StartupError, log_tail, pid_alive, spawn, stop_pid
from app.core.waiting import WaitTimeout, wait_until
from app.stack import targets
from app.stack.registry import ClusterRecord, Registry


def worker_env(rec: ClusterRecord) -> dict[str, str]:
    """Environment that points a worker process at a local cluster: its target, and the
    cluster's own health port."""
    return {
        **targets.for_cluster(rec).env(),
        "HAUL_WORKER_HEALTH_PORT": str(rec.port("worker_health")),
    }


def start_worker(
    rec: ClusterRecord,
    *,
    role: str = "worker",
    timeout: float = 60.0,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start `haul worker` for the cluster as its own process; wait for /healthz. `env` adds
    variables (HAUL_MIGRATION for a rehearsal) without changing this process's environment."""
    log = rec.log(role)
    pid = spawn(
        [sys.executable, "-m", "app", "worker"], log, env={**worker_env(rec), **(env or {})}
    )
    reg = Registry()
    with reg.locked():
        fresh = reg.get(rec.name) or rec
        fresh.track(role, pid)
        reg.put(fresh)
    rec.track(role, pid)
    url = f"http://127.0.0.1:{rec.port('worker_health')}/healthz"
    try:
        wait_until(
            lambda: httpx.get(url, timeout=1).status_code == 200,
            what=f"the worker (pid {pid}) to answer {url}",
            timeout=timeout,
            interval=0.3,
            retry_on=(httpx.HTTPError,),
            alive=lambda: pid_alive(pid),
        )
    except WaitTimeout as err:
        stop_pid(pid)
        raise StartupError(f"{err}; its log says:\n{log_tail(log)}") from None
    return pid


def stop_worker(rec: ClusterRecord, role: str = "worker", *, sig: int = signal.SIGTERM) -> None:
    """Stop a worker started by start_worker and forget its pid."""
    pid, expect = rec.pids.get(role), rec.stamps.get(role)
    rec.forget(role)
    if pid is not None and expect is not None:
        stop_pid(pid, sig=sig, expect=expect)
    reg = Registry()
    with reg.locked():
        fresh = reg.get(rec.name)
        if fresh is not None and role in fresh.pids:
            fresh.forget(role)
            reg.put(fresh)
