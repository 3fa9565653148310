"""The parcel pipeline on the dev stack: billable actions per invoice and per 1,000 charges,
throughput, worker RSS.

For each charges-per-invoice (10, 100, 1,000, 10,000 by default) and each audit batch size (in
charge groups), it generates an EDI 210 file (10 charges per group), ingests it through a worker
*process* (`haul worker`, so its peak RSS is its own), and prints invoices/s, charges/s, the
billable actions per invoice and per 1,000 charges, by action_type (the server's `action`
counter, through the shared ActionReader), and the worker's peak RSS (VmHWM). It then checks
the server's count by type against the histories of every run the file started (the ingest
workflow, its continued runs and children, and the shipment-job entities, whose IDs carry the
case's bill-to account), as `haul loadtest` does, and every history-visible count against the
formula below (the README's); any mismatch makes the exit code 1. It reports the issue's goals
(at most 3 actions per invoice at 10 charges, at most 1 per 1,000 charges at 10,000), and can
ingest one more, largest file to report peak RSS on it.

Expected billable actions of one file of N invoices of C charges in G charge groups each, audit
batch size B, page size P, run charge budget K, invoices per run M, S splitter runs, every
invoice in its own shipment job:

    small (C < K): each page of p invoices is cut into ceil(p / m) packed runs of at most
    m = min(M, floor(K / C)) invoices; a run of r invoices costs
        command_StartChildWorkflowExecution      1  (+ its _Extra, counted apart)
        command_ScheduleActivityTask             2 + ceil(r * G / B)  (normalize_run,
                                                 queue_run, audit_slices per batch)
    large (C >= K): each invoice keeps its own child, which costs
        command_StartChildWorkflowExecution      1  (+ _Extra)
        command_ScheduleActivityTask             2 + ceil(G / B)  (normalize, audits, queue)
    per shipment job, per run that holds its invoices (here: per invoice)
        grpc_SignalWithStartWorkflowExecution    1  (coalesced: one per job per run)
        command_ScheduleActivityTask             1  (the job's status activity)
    per file:
        grpc_StartWorkflowExecution              1
        command_ScheduleActivityTask             2 + ceil(N / P)  (index, finish, page reads)
        command_ContinueAsNewWorkflowExecution   S - 1
        command_BatchMarkers                     S  (the parcel-packed-runs patch, per run)
        command_UpsertWorkflowSearchAttributes   S  (its TemporalChangeVersion)

    python -m loadtest.bench_parcel                     # the 4 x 1 table, then the largest file
    python -m loadtest.bench_parcel --charges 10 --no-largest                   # quick look

The cluster is named bench-parcel and purged afterwards unless --keep is given.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from app.core.database import Database
from app.loadtest import accounting
from app.stack.registry import ClusterRecord

CHARGES_PER_GROUP = 10
# Every type a history shows that this pipeline could spend; a marker or an upsert beyond the
# patch's would be caught here too.
HISTORY_VISIBLE = (
    "grpc_StartWorkflowExecution",
    "grpc_SignalWithStartWorkflowExecution",
    "grpc_SignalWorkflowExecution",
    "command_StartChildWorkflowExecution",
    "command_StartChildWorkflowExecution_Extra",
    "command_ScheduleActivityTask",
    "command_ContinueAsNewWorkflowExecution",
    "command_SignalExternalWorkflowExecution",
    "command_StartTimer",
    "command_BatchMarkers",
    "command_UpsertWorkflowSearchAttributes",
    "command_ModifyWorkflowProperties",
    "activity_retry",
)


@dataclass
class Case:
    charges: int  # per invoice
    batch_size: int  # charge groups per audit activity
    invoices: int
    groups: int = 0
    elapsed: float = 0.0
    actions: dict[str, int] = field(default_factory=dict)
    # The same file's actions as its workflow histories explain them.
    history: dict[str, int] = field(default_factory=dict)
    page_size: int = 100
    budget: int = 10_000  # run charge budget K
    per_run: int = 100  # invoices per run M
    runs: int = 1  # splitter runs S
    peak_rss_mib: float = 0.0

    @property
    def pages(self) -> int:
        return math.ceil(self.invoices / self.page_size)

    def children(self) -> list[int]:
        """Invoices in each child, by the README's rule: packed runs, or one per large one."""
        if self.charges >= self.budget:
            return [1] * self.invoices
        m = max(1, min(self.per_run, self.budget // self.charges))
        out = []
        for page in range(self.pages):
            left = min(self.page_size, self.invoices - page * self.page_size)
            while left:
                out.append(min(m, left))
                left -= out[-1]
        return out

    @property
    def expected(self) -> dict[str, int]:
        n, g, b = self.invoices, self.groups, self.batch_size
        children = self.children()
        activities = sum(2 + math.ceil(r * g / b) for r in children)
        expected = dict.fromkeys(HISTORY_VISIBLE, 0)
        expected.update({
            "grpc_StartWorkflowExecution": 1,
            "grpc_SignalWithStartWorkflowExecution": n,
            "command_StartChildWorkflowExecution": len(children),
            "command_StartChildWorkflowExecution_Extra": len(children),
            "command_ScheduleActivityTask": activities + n + 2 + self.pages,
            "command_ContinueAsNewWorkflowExecution": self.runs - 1,
            # workflow.patched("parcel-packed-runs") in each splitter run: its marker, and the
            # TemporalChangeVersion search attribute the SDK upserts with it.
            "command_BatchMarkers": self.runs,
            "command_UpsertWorkflowSearchAttributes": self.runs,
        })
        return expected

    def per_invoice(self, action_type: str) -> float:
        return self.actions.get(action_type, 0) / self.invoices

    @property
    def total_per_invoice(self) -> float:
        return sum(self.actions.values()) / self.invoices

    def problems(self) -> list[str]:
        """What disagrees: the server's count against the histories, then against the formula."""
        label = f"charges {self.charges}, batch {self.batch_size}"
        rows = accounting.compare(self.actions, self.history, {})
        out = [f"{label}: {line}" for line in accounting.problems(rows)]
        expected = self.expected
        for kind in HISTORY_VISIBLE:
            got = self.actions.get(kind, 0)
            if got != expected[kind]:
                out.append(f"{label}: {kind}: server counted {got}, the formula says "
                           f"{expected[kind]}")
        return out


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def run_case(rec: ClusterRecord, case: Case, workdir: Path, *, page_size: int,
                   children_per_run: int, concurrency: int, seed: int) -> Case:
    from app.core.blobstore import LocalBlobStore
    from app.domains.parcel.models import PipelineSettings
    from app.domains.parcel.starter import ingest
    from app.formats.generator import Edi210Spec, write_edi210
    from app.platform.actions import ActionReader
    from app.platform.client import HaulClient, connect
    from app.platform.history import run_ids
    from app.stack import targets
    from app.stack.workers import start_worker, stop_worker

    groups = max(1, case.charges // CHARGES_PER_GROUP)
    path = workdir / f"bench-{case.charges}-{case.batch_size}.edi"
    # The bill-to account names the case, so its shipment-job entities can be found again.
    tag = f"bench{uuid.uuid4().hex[:10]}"
    write_edi210(path, Edi210Spec(invoices=case.invoices, groups_per_invoice=groups,
                                  charges_per_group=min(case.charges, CHARGES_PER_GROUP),
                                  seed=seed, discount_every=0, account=tag))
    case.groups = groups
    case.page_size = page_size
    target = targets.for_cluster(rec)
    client = await connect(target.profile, config_file=target.config_file)
    reader = ActionReader(rec.metrics_url, target.namespace)
    database = Database(rec.dsn())
    pid = start_worker(rec, role="bench-worker")
    try:
        baseline = await reader.measure_start()
        since = datetime.now(UTC) - timedelta(seconds=2)
        started = time.monotonic()
        summary, ran = await ingest(
            HaulClient(client), database, LocalBlobStore(rec.blob_dir), path,
            settings=PipelineSettings(max_concurrency=concurrency,
                                      audit_batch_size=case.batch_size, page_size=page_size,
                                      children_per_run=children_per_run,
                                      run_charge_budget=case.budget,
                                      invoices_per_run=case.per_run),
        )
        case.elapsed = time.monotonic() - started
        assert ran, f"{path.name} was ingested before; use a fresh cluster or another seed"
        assert summary.failures == 0, summary.failure_reasons
        case.actions = await reader.measure_end(baseline)
        tally = await accounting.tally_runs(client, tag, since, roots=[summary.workflow_id])
        case.history = tally.by_type
        case.runs = len(await run_ids(client, summary.workflow_id))
        case.peak_rss_mib = peak_rss_mib(pid)
    finally:
        stop_worker(rec, "bench-worker")
        database.close()
    return case


def short(action_type: str) -> str:
    return action_type.replace("command_", "").replace("grpc_", "").replace("Workflow", "Wf")


def report(console: Console, cases: list[Case]) -> bool:
    kinds = sorted({k for c in cases for k in c.actions})
    table = Table(title="parcel pipeline on the dev stack (actions are per invoice)")
    for col in ("charges/inv", "batch", "invoices", "inv/s", "charges/s", "peak RSS MiB",
                "actions/inv", "per 1k charges", *(short(k) for k in kinds)):
        table.add_column(col, justify="right")
    ok = True
    for c in cases:
        table.add_row(
            str(c.charges), str(c.batch_size), str(c.invoices),
            f"{c.invoices / c.elapsed:.1f}", f"{c.invoices * c.charges / c.elapsed:.0f}",
            f"{c.peak_rss_mib:.0f}", f"{c.total_per_invoice:.2f}",
            f"{1000 * c.total_per_invoice / c.charges:.2f}",
            *(f"{c.per_invoice(k):.2f}" for k in kinds),
        )
    console.print(table)
    for c in cases:
        for line in c.problems():
            ok = False
            console.print(f"[red]{line}[/red]", highlight=False)
    if ok:
        console.print("[green]server counts match the histories and the formula in every "
                      "case[/green]")
    for c in cases:
        per_k = 1000 * c.total_per_invoice / c.charges
        if c.charges == 10:
            mark = "[green]meets[/green]" if c.total_per_invoice <= 3 else "[red]misses[/red]"
            console.print(f"10 charges/invoice, batch {c.batch_size}: "
                          f"{c.total_per_invoice:.2f} actions per invoice: {mark} the goal of "
                          "<= 3")
        if c.charges == 10_000:
            mark = "[green]meets[/green]" if per_k <= 1 else "[red]misses[/red]"
            console.print(f"10,000 charges/invoice, batch {c.batch_size}: {per_k:.2f} actions "
                          f"per 1,000 charges: {mark} the goal of <= 1")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--charges", type=int, nargs="+", default=[10, 100, 1_000, 10_000])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1_000],
                        help="charge groups per audit activity")
    parser.add_argument("--run-charge-budget", type=int, default=10_000,
                        help="charges per packed run; an invoice with this many is large")
    parser.add_argument("--invoices-per-run", type=int, default=100)
    parser.add_argument("--charge-budget", type=int, default=30_000,
                        help="charges per case: invoices = budget / charges, within "
                        "[--min-invoices, --max-invoices]")
    parser.add_argument("--min-invoices", type=int, default=3)
    parser.add_argument("--max-invoices", type=int, default=200)
    parser.add_argument("--page-size", type=int, default=100)
    parser.add_argument("--children-per-run", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--largest", type=int, default=200_000,
                        help="charges of one invoice for the peak-RSS run (0: skip)")
    parser.add_argument("--no-largest", action="store_const", const=0, dest="largest")
    parser.add_argument("--keep", action="store_true", help="leave the bench cluster running")
    args = parser.parse_args()

    from app.core.migrate import migrate
    from app.stack import cluster

    console = Console(width=250)
    rec = cluster.up("bench-parcel", "dev", headless=True)
    ok = True
    try:
        migrate(rec.dsn())
        import psycopg

        from app.domains.rate_audit.activities import seed_contracts
        from app.domains.rate_audit.rates import sample_contracts

        with psycopg.connect(rec.dsn(), autocommit=True) as conn:
            seed_contracts(conn, sample_contracts())
        seed = int(time.time()) % 100_000
        cases: list[Case] = []
        with tempfile.TemporaryDirectory() as tmp:
            for charges in args.charges:
                for batch in args.batch_sizes:
                    seed += 1
                    invoices = min(args.max_invoices,
                                   max(args.min_invoices, args.charge_budget // charges))
                    case = Case(charges, batch, invoices, budget=args.run_charge_budget,
                                per_run=args.invoices_per_run)
                    console.print(f"charges/invoice {charges}, batch {batch}: "
                                  f"{case.invoices} invoices ...")
                    cases.append(asyncio.run(run_case(
                        rec, case, Path(tmp), page_size=args.page_size,
                        children_per_run=args.children_per_run,
                        concurrency=args.concurrency, seed=seed)))
            ok = report(console, cases)
            if args.largest:
                seed += 1
                largest = Case(args.largest, max(args.batch_sizes), 1,
                               budget=args.run_charge_budget, per_run=args.invoices_per_run)
                console.print(f"largest file: one invoice of {args.largest:,} charges ...")
                asyncio.run(run_case(rec, largest, Path(tmp), page_size=args.page_size,
                                     children_per_run=args.children_per_run,
                                     concurrency=args.concurrency, seed=seed))
                size = "under" if largest.peak_rss_mib < 512 else "OVER"
                console.print(
                    f"largest file ({args.largest:,} charges in one invoice): worker peak RSS "
                    f"{largest.peak_rss_mib:.0f} MiB, {size} the 512 MiB goal; "
                    f"{largest.elapsed:.1f} s, "
                    f"{1000 * largest.total_per_invoice / largest.charges:.2f} actions per "
                    "1,000 charges")
                for line in largest.problems():
                    console.print(f"[red]largest file: {line}[/red]", highlight=False)
                ok = ok and largest.peak_rss_mib < 512 and not largest.problems()
    finally:
        if not args.keep:
            cluster.down(rec.name, purge=True)
    sys.stdout.flush()
    os._exit(0 if ok else 1)


if __name__ == "__main__":
    main()
