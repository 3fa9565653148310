"""`haul loadtest locust-worker`: one long-lived Locust worker that serves run after run.

A Locust worker process serves one run: it exits when its master quits, and gives up after
five minutes with no master. In a Deployment that would mean restarts with a growing back-off
just when the next run starts. This loop starts a fresh worker process for each run instead
(a fresh process also means one Temporal connection per run and clean stats), with its own
scratch directory for the files it sends the master.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import FrameType

from app.loadtest.process_files import HARNESS_GLOB
from app.loadtest.runner import locust_files
from app.loadtest.settings import HANDOFF_VAR

RESTART_DELAY_SECONDS = 2.0


def worker_argv(master_host: str, master_port: int) -> list[str]:
    files = locust_files(shape=False)
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        files,
        "--worker",
        "--master-host",
        master_host,
        "--master-port",
        str(master_port),
        "--loglevel",
        "WARNING",
    ]


def serve(master_host: str, master_port: int, runs: int = 0) -> int:
    """Serve runs until stopped (SIGTERM, SIGINT) or, with runs > 0, until that many runs
    have been served. Returns how many runs were served."""
    served = 0
    stopping: list[int] = []
    child: list[subprocess.Popen[bytes]] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)
        if child and child[0].poll() is None:
            child[0].terminate()

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping and (runs <= 0 or served < runs):
            scratch = Path(tempfile.mkdtemp(prefix="haul-locust-worker-"))
            env = {k: v for k, v in os.environ.items() if k != HANDOFF_VAR}
            env["HAUL_LT_OUT"] = str(scratch)
            try:
                proc = subprocess.Popen(worker_argv(master_host, master_port), env=env)
                child[:] = [proc]
                code = proc.wait()
                # A worker that took part in a run left its stats file behind.
                if any(scratch.glob(HARNESS_GLOB)):
                    served += 1
                    print(f"locust worker: run {served} served (exit {code})", flush=True)
                elif not stopping:
                    print(f"locust worker: no run (exit {code}); starting again", flush=True)
                    time.sleep(RESTART_DELAY_SECONDS)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child and child[0].poll() is None:
            child[0].terminate()
            child[0].wait(timeout=30)
    return served
