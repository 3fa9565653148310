"""Response time of `haul api`'s pages and JSON reads with many recorded failures.

Starts a dev cluster (dev server and PostgreSQL 16), fills its failure store with `--failures`
synthetic records (spread over `--causes` fingerprints, 12 workflow types, 6 teams, 24 task
queues and the last 7 days, one in ten resolved), serves `haul api` on it as a real process,
and times each read `--repeat` times through HTTP. The records go straight into the table, as
the poller would leave them, so only the read path is measured.

    python -m loadtest.bench_inbox_dashboard                      # 100,000 failures
    python -m loadtest.bench_inbox_dashboard --failures 10000 --repeat 10
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg


def fill(dsn: str, failures: int, causes: int, seed: int = 7) -> None:
    """Insert synthetic failure records in one COPY."""
    from app.platform.fingerprint import fingerprint

    rnd = random.Random(seed)
    now = datetime.now(UTC)
    # Causes differ in words, not numbers: the fingerprint strips numbers and IDs.
    words = "abcdefghijklmnopqrstuvwxyz"
    templates = [
        f"carrier {words[c % 26]}{words[c // 26]}x rejected invoice {{n}}: no lane in table"
        for c in range(causes)
    ]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        with cur.copy(
            "copy workflow_failures (cluster, namespace, workflow_id, run_id, workflow_type, "
            "task_queue, owner_team, close_status, arguments, input_payloads, error_type, "
            "error_message, failure_stack, attempt, fingerprint, failed_at, closed_at, status) "
            "from stdin"
        ) as copy:
            for n in range(failures):
                cause = min(int(rnd.paretovariate(1.2)) - 1, causes - 1)
                message = templates[cause].format(n=n)
                kind = f"CarrierError{cause % 5}"
                at = now - timedelta(seconds=rnd.uniform(0, 7 * 86400))
                copy.write_row(
                    (
                        "bench",
                        "haul",
                        f"bench-task|{n}",
                        f"run-{n}",
                        f"BenchType{n % 12}",
                        f"queue-{n % 24}",
                        f"team-{n % 6}",
                        "Failed",
                        json.dumps([{"invoice": n}]),
                        "[]",
                        kind,
                        message,
                        "Traceback ...\n  raise ApplicationError\n",
                        1,
                        fingerprint(kind, message),
                        at,
                        at,
                        "resolved" if n % 10 == 0 else "open",
                    )
                )
        conn.commit()
    # As autovacuum leaves a table in steady state (visibility map set, statistics fresh).
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze workflow_failures")


def timed(http: httpx.Client, path: str, repeat: int) -> list[float]:
    http.get(path).raise_for_status()  # warm
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        http.get(path).raise_for_status()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--failures", type=int, default=100_000)
    parser.add_argument("--causes", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("HAUL_HOME", tempfile.mkdtemp(prefix="haul-bench-inbox-"))

    from app.core.migrate import migrate
    from app.core.procs import spawn, stop_pid
    from app.stack import cluster

    rec = cluster.up("bench-inbox", "dev", headless=True)
    pid = None
    try:
        migrate(rec.dsn())
        t0 = time.perf_counter()
        fill(rec.dsn(), args.failures, args.causes)
        print(f"filled {args.failures:,} failures in {time.perf_counter() - t0:.1f}s")
        log = Path(os.environ["HAUL_HOME"]) / "bench-api.log"
        # A long poll interval: the poller's pass over visibility must not overlap the reads.
        env = {"HAUL_API_POLL_SECONDS": "3600"}
        pid = spawn([sys.executable, "-m", "app", "api", "--cluster", rec.name], log, env=env)
        url = f"http://127.0.0.1:{rec.port('api')}"
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(200):
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.3)
            some = http.get("/api/failures", params={"limit": 1}).json()["items"][0]
            biggest = http.get("/api/failures/summary").json()["groups"][0]["key"]
            reads = {
                "dashboard / (by fingerprint, open)": "/",
                "dashboard /?by=owner_team": "/?by=owner_team",
                "dashboard /?hours=24": "/?hours=24",
                "list /failures (page 1)": "/failures",
                "list /failures?fingerprint=<biggest>": f"/failures?fingerprint={biggest}",
                "detail /failures/{id}": f"/failures/{some['id']}",
                "GET /api/failures/summary": "/api/failures/summary",
                "GET /api/failures?limit=50": "/api/failures?limit=50",
            }
            print(f"{'read':44} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}  (n={args.repeat})")
            for name, path in reads.items():
                ms = sorted(timed(http, path, args.repeat))
                p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
                print(f"{name:44} {statistics.median(ms):10.1f} {p95:8.1f} {ms[-1]:8.1f}")
    finally:
        if pid is not None:
            stop_pid(pid)
        cluster.down(rec.name, purge=True)


if __name__ == "__main__":
    main()
