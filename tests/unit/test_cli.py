"""The `haul` entry point keeps exit codes: a clean run exits 0, a failing gate non-zero."""

from __future__ import annotations

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args], capture_output=True, text=True, timeout=120
    )


def test_help_exits_zero() -> None:
    done = run("--help")
    assert done.returncode == 0
    assert "stack" in done.stdout and "worker" in done.stdout


def test_bad_usage_exits_with_clicks_code() -> None:
    done = run("stack", "down")  # missing the cluster name
    assert done.returncode == 2
    assert "Missing argument" in done.stderr


def test_a_typer_exit_code_is_kept() -> None:
    # `haul stack down` of an unknown cluster fails with a clear message and exit code 1.
    done = run("stack", "down", "no-such-cluster")
    assert done.returncode == 1
    assert "no cluster named 'no-such-cluster'" in done.stdout
