"""`haul migrate rehearse --abort-at routing` on two dev clusters: the abort walks both
look-up steps, the migration back is drained and finished, and the ledger stays clean.
And the arguments it refuses before starting anything."""

from __future__ import annotations

import re
import subprocess
import sys

OLD, NEW = "rh-it-old", "rh-it-new"


def rehearse(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", "migrate", "rehearse", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_an_aborted_rehearsal_returns_to_the_old_cluster_and_loses_nothing() -> None:
    done = rehearse(
        "--from", "dev", "--to", "dev", "--old", OLD, "--new", NEW,
        "--abort-at", "routing", "--duration", "2", "--rate", "8", "--entities", "20",
        "--parcel-every", "0", "--timeout", "150",
    )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "no violation" in out, out
    assert "routing:both_new in effect" in out and "routing:both_old in effect" in out, out
    # The migration back (old and new swapped) is drained and finished on the old cluster.
    assert f"ended at: single on {OLD}" in out, out
    ledger = re.search(r"ledger: (\d+) tasks, (\d+) entities, (\d+) events", out)
    assert ledger is not None and all(int(g) > 0 for g in ledger.groups()), out
    assert "worker killed during draining: yes" in out, out


def test_a_stage_that_cannot_be_aborted_is_refused_before_anything_starts() -> None:
    done = rehearse("--from", "dev", "--to", "dev", "--abort-at", "drained")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--abort-at 'drained' is no stage to abort at" in done.stdout + done.stderr
    assert "bringing up" not in done.stdout


def test_the_same_cluster_twice_is_refused() -> None:
    done = rehearse("--from", "dev", "--to", "dev", "--old", OLD, "--new", OLD)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "name two clusters" in done.stdout + done.stderr
