"""`haul api` as a real process on a dev cluster, for the integration and browser tiers."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from app.core.procs import spawn, stop_pid
from app.stack.registry import ClusterRecord

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ApiServer:
    url: str
    token: str
    log: Path
    pid: int

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def api_server(
    rec: ClusterRecord, log: Path, token: str, poll_seconds: float = 0.5
) -> Iterator[ApiServer]:
    """Start `haul api --cluster` on the cluster's api port; stop it by its pid on exit."""
    port = rec.port("api")
    env = {
        "HAUL_API_TOKEN": token,
        "HAUL_API_POLL_SECONDS": str(poll_seconds),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    pid = spawn([sys.executable, "-m", "app", "api", "--cluster", rec.name], log, env=env)
    server = ApiServer(f"http://127.0.0.1:{port}", token, log, pid)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"haul api did not serve within 60s:\n{log.read_text()[-3000:]}"
                )
            time.sleep(0.3)
        yield server
    finally:
        stop_pid(pid)
