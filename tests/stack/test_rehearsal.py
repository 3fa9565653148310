"""`haul migrate rehearse` from Postgres to Cassandra on the tier's own two clusters: the
whole walk under a small mixed load, a worker killed while draining, handoff, and a ledger
that must come out clean. Run as a user runs it (a `haul` process), so its exit code counts."""

from __future__ import annotations

import re
import subprocess
import sys

from app.stack.registry import ClusterRecord
from tests.stack.conftest import CS, PG


def test_a_rehearsal_from_postgres_to_cassandra_loses_nothing(
    pg_cluster: ClusterRecord, cs_cluster: ClusterRecord
) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "migrate",
            "rehearse",
            "--from",
            "postgres",
            "--to",
            "cassandra",
            "--old",
            PG,
            "--new",
            CS,
            "--keep",  # the tier's session fixtures stop them
            "--duration",
            "3",
            "--rate",
            "8",
            "--entities",
            "40",
            "--parcel-every",
            "4",
            "--timeout",
            "150",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    print(out)  # the per-phase figures, with `pytest -s`
    assert done.returncode == 0, out
    assert "no violation" in out, out
    ledger = re.search(
        r"ledger: (\d+) tasks, (\d+) entities, (\d+) events, (\d+) schedule periods, "
        r"(\d+) samples \(\d+ missed\); router placed (.*)",
        out,
    )
    assert ledger is not None, out
    tasks, entities, events, periods, samples = (int(g) for g in ledger.groups()[:5])
    # 40 fan-in entities (those the load drew) and 4 long-running ones.
    assert tasks > 20 and 4 < entities <= 44 and events > 40 and samples > 10, out
    # A schedule every 2 seconds through the whole walk.
    assert periods >= 10, out
    assert f"on {PG}" in ledger.group(6) and f"on {CS}" in ledger.group(6), out
    handed = re.search(r"handed off: (\d+); worker killed during draining: yes", out)
    assert handed is not None and int(handed.group(1)) >= 1, out
    assert f"ended at: single on {CS}" in out, out
    for stage in ("routing:guard", "routing:claim", "routing:lookup", "draining"):
        assert f"│ {stage}" in out, out
