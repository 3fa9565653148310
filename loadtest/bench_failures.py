"""The failure inbox under load: poller lag at a steady failure rate, and store queries at 100k.

Two measurements, each on its own dev cluster (`bench-failures`, purged afterwards unless
--keep):

1. **Poller lag.** This process starts GreetingWorkflow runs at `--rate` a second for
   `--seconds` while a Poller runs its loop every `--interval` seconds, as `haul api` does.
   With `--kind failure` a `haul worker` process serves them and their activity fails for
   good (the real path, bounded by what the worker and dev server can run here); with
   `--kind timeout` no worker serves their queue and the server times each out after 1 s, so
   failures arrive at the asked rate and only the poller is measured. The lag of a failure is
   its record's `recorded_at` minus the run's close time (both from the store), so it covers
   visibility, the poll interval and the pass.
   It prints the achieved start and failure rates and the lag's quantiles, and how many
   failures were recorded within `--drain` seconds of the last start.

2. **Store queries at scale.** `--rows` failures (100,000 by default) with realistic spread
   (causes, types, teams, queues, statuses, two weeks of close times, some resolved, some
   redriven) are inserted straight into a scratch database with COPY; then each query the
   dashboard and the CLI make (summary by each key and by time window, list pages and filters,
   count, bulk-redrive candidates, one detail) runs `--repeat` times, and its median and
   worst time and the plan's top node are printed.

    python -m loadtest.bench_failures                        # both, 100/s for 30 s, 100k rows
    python -m loadtest.bench_failures --only store --rows 100000 --baseline
    python -m loadtest.bench_failures --only lag --kind timeout --rate 100 --seconds 30

Timings belong here, never in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
from rich.console import Console
from rich.table import Table

from app.platform.failures import GROUP_KEYS, FailureFilter, FailureStore, GroupKey
from app.stack.registry import ClusterRecord

console = Console(width=160)
CLUSTER = "bench-failures"


# -- poller lag ------------------------------------------------------------------------------


async def measure_lag(
    rec: ClusterRecord,
    kind: str,
    rate: float,
    seconds: float,
    interval: float,
    drain: float,
    concurrency: int,
) -> dict[str, Any]:
    from app.domains.sample.models import GreetingInput
    from app.domains.sample.workflows import GreetingWorkflow
    from app.platform.client import HaulClient
    from app.platform.discovery import discovered_task_queues
    from app.platform.failure_poller import Poller
    from app.stack import targets

    store = FailureStore(rec.dsn())
    haul = await HaulClient.connect(targets.for_cluster(rec))
    client = haul.router.clients[haul.router.state.old]
    teams = {q: ",".join(sorted(t)) for q, t in discovered_task_queues().items()}
    poller = Poller(client, store, cluster=CLUSTER, teams=teams, concurrency=concurrency)
    tag = uuid.uuid4().hex[:8]
    prefix = f"|{tag}-"  # HaulClient IDs: greeting-workflow|<tag>-<n>
    stop = asyncio.Event()
    polling = asyncio.create_task(poller.run(stop, interval))
    total = int(rate * seconds)
    loop = asyncio.get_running_loop()
    started_at = loop.time()
    pending: set[asyncio.Task[Any]] = set()
    start_errors = 0

    async def start(n: int) -> None:
        nonlocal start_errors
        try:
            if kind == "timeout":
                # No worker serves this queue: the server times each run out by itself.
                await haul.start(
                    GreetingWorkflow.run,
                    GreetingInput(name=f"lag {n}"),
                    f"{tag}-{n}",
                    task_queue=f"nobody-{tag}",
                    execution_timeout=timedelta(seconds=1),
                )
            else:
                await haul.start(
                    GreetingWorkflow.run, GreetingInput(name=f"lag {n}", fail=True), f"{tag}-{n}"
                )
        except Exception:
            start_errors += 1

    try:
        for n in range(total):
            due = started_at + n / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            task = asyncio.create_task(start(n))
            pending.add(task)
            task.add_done_callback(pending.discard)
        await asyncio.gather(*pending)
        start_span = loop.time() - started_at
        end = loop.time() + drain
        recorded = 0
        while loop.time() < end:
            recorded = await asyncio.to_thread(_count_prefix, rec.dsn(), prefix)
            if recorded >= total - start_errors:
                break
            await asyncio.sleep(1)
    finally:
        stop.set()
        await polling
        await haul.close()
    rows = await asyncio.to_thread(_lags, rec.dsn(), prefix)
    lags = sorted(r[0] for r in rows)
    closes = sorted(r[1] for r in rows)
    fail_span = (closes[-1] - closes[0]).total_seconds() if len(closes) > 1 else 0.0
    return {
        "kind": kind,
        "asked_rate": rate,
        "started": total - start_errors,
        "start_errors": start_errors,
        "start_rate": (total - start_errors) / start_span if start_span else 0.0,
        "recorded": len(lags),
        "failure_rate": (len(closes) - 1) / fail_span if fail_span else 0.0,
        "interval": interval,
        "concurrency": concurrency,
        "lag_p50": _q(lags, 0.50),
        "lag_p95": _q(lags, 0.95),
        "lag_p99": _q(lags, 0.99),
        "lag_max": lags[-1] if lags else float("nan"),
    }


def _count_prefix(dsn: str, prefix: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select count(*) from workflow_failures where workflow_id like %s",
            (f"%{prefix}%",),
        ).fetchone()
    return int(row[0]) if row else 0


def _lags(dsn: str, prefix: str) -> list[tuple[float, datetime]]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select extract(epoch from recorded_at - failed_at)::float8, failed_at "
            "from workflow_failures where workflow_id like %s",
            (f"%{prefix}%",),
        ).fetchall()
    return [(float(r[0]), r[1]) for r in rows]


def _q(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


# -- store queries ---------------------------------------------------------------------------

TYPES = [f"{name}Workflow" for name in ("ParcelIngest", "RateAudit", "InvoiceNormalize",
         "DocumentOcr", "AgentTriage", "CarrierSync", "ShipmentJob", "ReviewQueue",
         "LedgerEntity", "Greeting", "Backfill", "Reconcile")]  # fmt: skip
TEAMS = ["platform", "parcel", "audit", "documents", "agents", "finance"]
QUEUES = [f"queue-{n}" for n in range(10)]
CAUSES = [(f"Cause{n}", f"cause {n}: carrier {{id}} returned status {{n}}") for n in range(40)]
STATUSES = ["Failed"] * 8 + ["TimedOut", "Terminated"]


def seed(dsn: str, rows: int, seed_value: int = 14) -> None:
    """`rows` failures, and a redrive for one in twenty, with COPY (minutes, not hours)."""
    from app.platform.fingerprint import fingerprint

    rnd = random.Random(seed_value)
    now = datetime.now(UTC)
    # A few causes dominate, as in life: weights fall off geometrically.
    weights = [0.8**n for n in range(len(CAUSES))]
    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        columns = (
            "cluster, namespace, workflow_id, run_id, workflow_type, task_queue, owner_team, "
            "close_status, arguments, input_payloads, error_type, error_message, failure_stack, "
            "attempt, fingerprint, status, failed_at, closed_at"
        )
        with cur.copy(f"copy workflow_failures ({columns}) from stdin") as copy:
            for n in range(rows):
                kind, template = rnd.choices(CAUSES, weights)[0]
                message = template.format(id=f"acct-{rnd.randrange(10**6)}", n=rnd.randrange(600))
                queue = rnd.choice(QUEUES)
                failed_at = now - timedelta(seconds=rnd.uniform(0, 14 * 86400))
                copy.write_row(
                    (
                        "bench",
                        "haul",
                        f"bench-{n}",
                        str(uuid.UUID(int=rnd.getrandbits(128))),
                        rnd.choice(TYPES),
                        queue,
                        TEAMS[QUEUES.index(queue) % len(TEAMS)],
                        rnd.choice(STATUSES),
                        json.dumps([{"invoice": n}]),
                        json.dumps([{"metadata": {}, "data": "e30="}]),
                        kind,
                        message,
                        "Traceback ...\n" * 5,
                        1,
                        fingerprint(kind, message),
                        "resolved" if rnd.random() < 0.1 else "open",
                        failed_at,
                        failed_at,
                    )
                )
        cur.execute(
            """insert into failure_redrives (failure_id, mode, new_run_id, outcome, requested_at)
               select id, 'rerun', gen_random_uuid()::text,
                      case when id % 3 = 0 then 'Failed' else 'Completed' end, failed_at
               from workflow_failures where id % 20 = 0"""
        )
        conn.commit()
    # What autovacuum does to a table that has settled: statistics and the visibility map
    # (which index-only scans read).
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze workflow_failures")
        conn.execute("vacuum analyze failure_redrives")


def queries(store: FailureStore) -> list[tuple[str, Callable[[], Any], str, list[Any]]]:
    """(name, the store call, the SQL it runs for EXPLAIN, its parameters)."""
    top = store.summary(FailureFilter())[0].key
    day = datetime.now(UTC) - timedelta(days=1)
    sample = store.list(FailureFilter(), limit=1)[0].id
    open_ = FailureFilter()
    by_fp = FailureFilter(fingerprint=top)
    q_day = FailureFilter(task_queue="queue-3", since=day)

    summary_sql, list_sql = store.summary_query, store.list_query

    out: list[tuple[str, Callable[[], Any], str, list[Any]]] = []

    def grouped(by: GroupKey) -> Callable[[], Any]:
        return lambda: store.summary(open_, by=by)

    for by in GROUP_KEYS:
        sql, params = summary_sql(open_, cast(GroupKey, by))
        out.append((f"summary by {by} (open)", grouped(cast(GroupKey, by)), sql, params))
    day_f = FailureFilter(since=day)
    sql, params = summary_sql(day_f)
    out.append(("summary by fingerprint, last 24 h", lambda: store.summary(day_f), sql, params))
    sql, params = list_sql(open_, limit=50)
    out.append(("list open, page 1 of 50", lambda: store.list(open_, limit=50), sql, params))
    sql, params = list_sql(open_, limit=50, offset=4950)
    out.append(
        ("list open, page 100", lambda: store.list(open_, limit=50, offset=4950), sql, params)
    )
    sql, params = list_sql(by_fp, limit=50)
    out.append(("list one cause, page 1", lambda: store.list(by_fp, limit=50), sql, params))
    sql, params = list_sql(q_day, limit=50)
    out.append(("list one queue, last 24 h", lambda: store.list(q_day, limit=50), sql, params))
    where, params = open_.where()
    out.append(
        (
            "count open",
            lambda: store.count(open_),
            f"select count(*) from workflow_failures {where}",
            params,
        )
    )
    where, params = by_fp.where()
    out.append(
        (
            "bulk-redrive candidates, one cause",
            lambda: store.redrive_candidates(by_fp, 100),
            f"select * from workflow_failures {where} and not exists (select 1 from "
            "failure_redrives r where r.failure_id = workflow_failures.id and r.outcome in "
            "('Running', 'Completed')) order by failed_at, id limit 100",
            params,
        )
    )
    out.append(
        (
            "detail of one failure",
            lambda: (store.get(sample), store.redrives(sample)),
            "select * from workflow_failures where id = %s",
            [sample],
        )
    )
    return out


def measure_store(dsn: str, repeat: int) -> list[dict[str, Any]]:
    store = FailureStore(dsn)
    results = []
    with psycopg.connect(dsn) as conn:
        for name, call, sql, params in queries(store):
            call()  # warm the cache: we measure queries, not cold disks
            times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                call()
                times.append((time.perf_counter() - t0) * 1000)
            # The same SQL on a warm connection: what the indexes decide, without the
            # store's connection setup.
            conn.execute(sql, params).fetchall()
            sql_times = []
            for _ in range(repeat):
                t0 = time.perf_counter()
                conn.execute(sql, params).fetchall()
                sql_times.append((time.perf_counter() - t0) * 1000)
            plan = conn.execute("explain (format json) " + sql, params).fetchone()[0]  # type: ignore[index]
            results.append(
                {
                    "query": name,
                    "median_ms": statistics.median(times),
                    "max_ms": max(times),
                    "sql_median_ms": statistics.median(sql_times),
                    "plan": _plan_summary(plan[0]["Plan"]),
                }
            )
    return results


def _plan_summary(node: dict[str, Any]) -> str:
    """The plan's scan nodes, in order: how the rows were found."""
    scans: list[str] = []

    def walk(n: dict[str, Any]) -> None:
        if "Scan" in n["Node Type"]:
            scans.append(f"{n['Node Type']}" + (f" {n['Index Name']}" if "Index Name" in n else ""))
        for child in n.get("Plans", []):
            walk(child)

    walk(node)
    return ", ".join(dict.fromkeys(scans))


# What 0006 replaced: the inbox's indexes before it, for --baseline.
BASELINE_INDEXES = """
drop index workflow_failures_by_fingerprint, workflow_failures_by_type, workflow_failures_by_team,
    workflow_failures_by_queue, workflow_failures_by_close, workflow_failures_by_status;
create index workflow_failures_fingerprint on workflow_failures (fingerprint, failed_at);
create index workflow_failures_status on workflow_failures (status, failed_at);
"""


def print_store(dsn: str, args: argparse.Namespace, label: str) -> None:
    title = f"failure store, {args.rows:,} failures, {label}, {args.repeat} runs each"
    table = Table("query", "store call ms (median)", "max", "SQL alone ms", "plan", title=title)
    for r in measure_store(dsn, args.repeat):
        table.add_row(
            r["query"],
            f"{r['median_ms']:.1f}",
            f"{r['max_ms']:.1f}",
            f"{r['sql_median_ms']:.1f}",
            r["plan"],
        )
    console.print(table)


# -- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("lag", "store"), default=None)
    parser.add_argument(
        "--kind",
        choices=("failure", "timeout"),
        default="failure",
        help="failure: sample runs whose activity fails for good, on a `haul worker`; "
        "timeout: runs on a queue no worker serves, timed out by the server (no worker cost)",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="failures a second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=2.0, help="poller interval, seconds")
    parser.add_argument("--concurrency", type=int, default=16, help="histories read at once")
    parser.add_argument("--drain", type=float, default=300.0, help="seconds to wait for records")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--baseline", action="store_true", help="also measure with the indexes before 0006"
    )
    parser.add_argument("--keep", action="store_true", help="leave the cluster running")
    args = parser.parse_args(argv)

    from app.core.migrate import migrate
    from app.stack import cluster
    from app.stack.workers import start_worker, stop_worker

    rec = cluster.up(CLUSTER, "dev", headless=True)
    try:
        migrate(rec.dsn())
        if args.only in (None, "store"):
            scratch = f"bench_store_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(rec.dsn("postgres"), autocommit=True) as conn:
                conn.execute(f'create database "{scratch}"')
            try:
                migrate(rec.dsn(scratch))
                t0 = time.perf_counter()
                seed(rec.dsn(scratch), args.rows)
                console.print(f"seeded {args.rows:,} failures in {time.perf_counter() - t0:.1f}s")
                print_store(rec.dsn(scratch), args, "with the shipped indexes")
                if args.baseline:
                    with psycopg.connect(rec.dsn(scratch), autocommit=True) as conn:
                        conn.execute(BASELINE_INDEXES)
                        conn.execute("vacuum analyze workflow_failures")
                    print_store(rec.dsn(scratch), args, "with only 0004's indexes")
            finally:
                with psycopg.connect(rec.dsn("postgres"), autocommit=True) as conn:
                    conn.execute(f'drop database "{scratch}"')
        if args.only in (None, "lag"):
            if args.kind == "failure":
                start_worker(rec, role="bench-worker")
            try:
                res = asyncio.run(
                    measure_lag(
                        rec,
                        args.kind,
                        args.rate,
                        args.seconds,
                        args.interval,
                        args.drain,
                        args.concurrency,
                    )
                )
            finally:
                if args.kind == "failure":
                    stop_worker(rec, "bench-worker")
            table = Table("figure", "value", title="poller lag (close time to record time)")
            for key, value in res.items():
                table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
            console.print(table)
    finally:
        if not args.keep:
            cluster.down(CLUSTER, purge=True)
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    # See DESIGN.md "Abort at interpreter exit": nothing may turn a clean run into exit 134.
    os._exit(code)
