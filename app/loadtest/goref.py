"""The Go reference: Temporal's Go SDK worker and starter (loadtest/goref), built and run here.

The binary is built once per source: `go build` into `cache_home()/goref-<hash>/goref`, where
the hash covers go.mod, go.sum and every .go file, so an edit rebuilds and an unchanged tree
never does. The build runs under a file lock into a temporary directory renamed into place, as
temporal-server's does. Modules come from the Go module proxy on a fresh machine.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import app
from app.core.files import locked
from app.core.procs import StartupError, log_tail, pid_alive, spawn, stop_pid
from app.core.waiting import WaitTimeout, wait_until
from app.loadtest.models import StarterResult
from app.stack.builds import BuildError
from app.stack.registry import cache_home

TASK_QUEUE = "loadgen-go"


def default_source() -> Path:
    """loadtest/goref beside the `app` package (a checkout); a wheel has none."""
    return Path(app.__file__).resolve().parent.parent / "loadtest" / "goref"


def source_hash(src: Path) -> str:
    files = sorted(p for p in src.iterdir() if p.name in ("go.mod", "go.sum") or p.suffix == ".go")
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def binary(src: Path | None = None) -> Path:
    """The goref binary for `src` (default: loadtest/goref), built the first time."""
    src = (src or default_source()).resolve()
    if not (src / "go.mod").is_file():
        raise BuildError(
            f"no Go reference source at {src} (no go.mod there); run from a haul checkout or "
            "pass --goref-src DIR (HAUL_LT_GOREF_SRC) pointing at loadtest/goref"
        )
    root = cache_home() / f"goref-{source_hash(src)}"
    path = root / "goref"
    if not path.exists():
        with locked(cache_home() / f".goref-{root.name}.lock"):
            if not path.exists():
                _build(src, root)
    return path


def _build(src: Path, root: Path) -> None:
    from app.core.procs import run

    go = shutil.which("go")
    if not go:
        raise BuildError(
            "`go` was not found on PATH; install Go 1.26 or newer (https://go.dev/dl/ or "
            "`apt-get install golang`) to build the Go reference in loadtest/goref"
        )
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="build-", dir=root))
    try:
        run(
            [go, "build", "-buildvcs=false", "-trimpath", "-o", str(tmp / "goref"), "."],
            f"building the Go reference in {src} (go.temporal.io/sdk comes from the Go module "
            "proxy on a fresh machine)",
            cwd=src,
            error=BuildError,
        )
        (tmp / "goref").rename(root / "goref")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def start_worker(exe: Path, address: str, namespace: str, log: Path, timeout: float = 60.0) -> int:
    """Start the Go worker on TASK_QUEUE in its own process; return its pid once it polls."""
    argv = [str(exe), "worker", "-address", address, "-namespace", namespace]
    pid = spawn([*argv, "-task-queue", TASK_QUEUE], log)

    def ready() -> bool:
        return log.exists() and "ready" in log.read_text(errors="replace").splitlines()

    try:
        wait_until(
            ready,
            what=f"the Go worker (pid {pid}) to start",
            timeout=timeout,
            interval=0.2,
            alive=lambda: pid_alive(pid),
        )
    except WaitTimeout as err:
        stop_pid(pid)
        raise StartupError(f"{err}; its log says:\n{log_tail(log)}") from None
    return pid


async def run_starter(
    exe: Path,
    *,
    address: str,
    namespace: str,
    concurrency: int,
    duration: float,
    tag: str,
    out: Path,
    task_queue: str = TASK_QUEUE,
) -> StarterResult:
    """Run the Go starter for `duration` with `concurrency` workflows in flight, on the Go
    worker's queue unless `task_queue` names another (haul's worker serves the same names)."""
    result = out / f"{tag}.json"
    log = out / f"{tag}.log"
    argv = [str(exe), "starter", "-address", address, "-namespace", namespace]
    argv += ["-task-queue", task_queue, "-concurrency", str(concurrency)]
    argv += ["-duration", f"{duration}s", "-id-prefix", tag, "-out", str(result)]
    with log.open("wb") as fh:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=fh, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ)
        )
        code = await proc.wait()
    if code != 0 or not result.exists():
        raise RuntimeError(f"the Go starter exited with {code}; its log says:\n{log_tail(log)}")
    return StarterResult.model_validate_json(result.read_text())
