"""The README's first command, end to end: `haul run --exit-when-done` on a fresh state home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from app.stack.registry import Registry


def processes_using(home: Path) -> list[str]:
    """Live processes whose command line or environment names the state home: the dev server
    and Postgres (their data paths) and the worker (its temporal.toml)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            environ = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if str(home) in cmdline + environ and "pytest" not in cmdline:
            found.append(cmdline)
    return found


def test_haul_run_ingests_the_sample_and_stops_everything() -> None:
    # Not under tmp_path: its parents are private to root, and PostgreSQL runs as an
    # unprivileged user when the tests run as root.
    home = Path(tempfile.mkdtemp(prefix="haul-main-job-"))
    home.chmod(0o755)
    env = {**os.environ, "HAUL_HOME": str(home), "COLUMNS": "200"}
    env.pop("HAUL_KEEP_CLUSTER", None)
    done = subprocess.run(
        [sys.executable, "-m", "app", "run", "--exit-when-done"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    out = done.stdout
    try:
        assert done.returncode == 0, out + done.stderr
        assert "cluster 'default' up" in out
        assert "parcel ingestion" in out and "completed" in out, out
        assert "Temporal UI: http://127.0.0.1:" in out
        rec = Registry(home).get("default")
        assert rec is not None
        # --exit-when-done stops the worker and the cluster's processes.
        assert rec.pids == {}
        assert processes_using(home) == [], "a process of the main job outlived it"
    finally:
        subprocess.run(
            [sys.executable, "-m", "app", "stack", "down", "default", "--purge"],
            capture_output=True, text=True, timeout=120, env=env,
        )
        shutil.rmtree(home, ignore_errors=True)
