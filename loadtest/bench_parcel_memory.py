"""Peak RSS of the parcel worker's real index and normalize code on the largest hostile files.

Each case runs in a fresh child process, so its peak is its own: the parent reads it back with
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` once the child has exited, and the child also
reports its own ``RUSAGE_SELF`` peak. The cases are the inputs that used to take workers down:

- ``one-group-400k``: one LX loop of 400,000 L1 charges (about 17 MB), accepted: its charges
  stream through in chunks;
- ``group-at-cap``: one LX loop of exactly HAUL_PARCEL_MAX_CHARGES_PER_GROUP charges, accepted;
- ``group-over-cap``: one charge more, refused by the cap on charges per group;
- ``csv-endless-line``: a UPS CSV with a 64 MiB line, refused by the line cap.

The index step is ``ParcelActivities.index_file``'s streaming pass; normalize reads every invoice
blob as ``normalize_invoice`` does and, with ``--dsn``, runs ``normalize_invoice`` itself
against that app database (which must be migrated), then ``audit_charge_groups`` on every
group it wrote.

    python -m loadtest.bench_parcel_memory                  # every case, parse + blob read
    python -m loadtest.bench_parcel_memory --dsn DSN        # the full activities on Postgres

The caps are the worker's: HAUL_PARCEL_MAX_CHARGES_PER_GROUP (default 1,000,000) sizes the
``group-*-cap`` cases, so a test can run them smaller.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CASES = ("one-group-400k", "group-at-cap", "group-over-cap", "csv-endless-line")
MIB = 1 << 20


def write_case(case: str, path: Path, charges_per_group: int) -> None:
    """The hostile file of one case."""
    from app.formats import csv_layouts as L
    from app.formats.generator import Edi210Spec, EdiQuirks, write_edi210

    if case == "csv-endless-line":
        row = [""] * L.UPS_COLUMN_COUNT
        for name, value in (("account_number", "A1"), ("invoice_number", "INV1"),
                            ("invoice_date", "2026-11-20"), ("invoice_amount", "10.00"),
                            ("tracking_number", "1Z1"), ("charge_classification_code", "FRT"),
                            ("net_amount", "10.00")):
            row[L.UPS_COLUMNS[name] - 1] = value
        with path.open("w", newline="") as out:
            csv.writer(out, lineterminator="\r\n").writerow(row)
            block = "x" * MIB
            for _ in range(64):
                out.write(block)
            out.write("\r\n")
        return
    charges = {"one-group-400k": 400_000, "group-over-cap": charges_per_group + 1}.get(
        case, charges_per_group)
    write_edi210(path, Edi210Spec(invoices=1, groups_per_invoice=1, charges_per_group=charges,
                                  discount_every=0, quirks=EdiQuirks(newline="\r\n")))


def run_case(case: str, workdir: Path, dsn: str) -> dict[str, Any]:
    """Index the case's file, normalize (and audit) its invoices in this process; what came
    out."""
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from app.core.blobstore import LocalBlobStore
    from app.core.settings import Settings
    from app.domains.parcel.activities import ParcelActivities, read_invoice_blob
    from app.domains.parcel.models import (
        IndexInput,
        InvoiceInput,
        ParserSettings,
        file_blob_key,
        invoice_blob_key,
    )
    from app.domains.rate_audit.activities import RateAuditActivities
    from app.domains.rate_audit.models import AuditBatchInput
    from app.platform.worker import WorkerContext

    limits = ParserSettings().limits()
    source = workdir / f"{case}.dat"
    write_case(case, source, limits.max_charges_per_group)
    content_hash = hashlib.sha256(f"{case}:{source.stat().st_size}".encode()).hexdigest()
    blobs = LocalBlobStore(workdir / "blobs")
    blobs.put_file(file_blob_key(content_hash), source)
    settings = Settings(database_url=dsn or "postgresql://unused", blob_dir=str(blobs.root))
    ctx = WorkerContext(settings, haul=None)  # type: ignore[arg-type]
    acts, audit = ParcelActivities(ctx), RateAuditActivities(ctx)
    env = ActivityEnvironment()
    started = time.perf_counter()
    index_input = IndexInput(content_hash=content_hash, workflow_id=f"bench-{case}",
                             file_name=source.name)
    result = (env.run(acts.index_file, index_input) if dsn else
              env.run(acts._index, index_input))
    failures = []
    audited = 0
    for i in range(result.invoice_count):
        if dsn:
            try:
                norm = env.run(acts.normalize_invoice,
                               InvoiceInput(content_hash=content_hash, index=i))
            except ApplicationError as err:
                failures.append(err.message[:300])
                continue
            audited += env.run(audit.audit_charge_groups, AuditBatchInput(
                revision_id=norm.revision_id, first_sequence=1,
                last_sequence=norm.group_count)).groups
            continue
        with blobs.reader(invoice_blob_key(content_hash, i)) as stream:
            head, groups, _ = read_invoice_blob(stream)
            for _ in groups:
                pass
            if not hasattr(head, "header") and hasattr(head, "message"):
                failures.append(head.message[:300])
    return {
        "case": case,
        "file_bytes": source.stat().st_size,
        "invoices": result.invoice_count,
        "charges": result.charge_count,
        "audited_groups": audited,
        "failures": failures,
        "seconds": round(time.perf_counter() - started, 2),  # index and normalize, measured
        "self_peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(case: str, dsn: str = "") -> dict[str, Any]:
    """Run one case in a child process; its report plus the peak RSS the kernel recorded."""
    with tempfile.TemporaryDirectory(prefix="haul-mem-") as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "loadtest.bench_parcel_memory", "--child", case,
             "--workdir", tmp, *(["--dsn", dsn] if dsn else [])],
            capture_output=True, text=True, check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"case {case} failed ({done.returncode}): {done.stderr[-2000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    report["children_peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--case", action="append", choices=CASES, help="a case (repeatable)")
    parser.add_argument("--dsn", default="", help="a migrated app database for the full path")
    parser.add_argument("--child", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args.child, Path(args.workdir), args.dsn)))
        return 0
    for case in args.case or CASES:
        print(json.dumps(measure(case, args.dsn)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
