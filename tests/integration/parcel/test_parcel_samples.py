"""Every shipped sample and every real 210 file, through the whole pipeline on the dev stack.

Counts and totals are checked against the file itself (the parser's own summary of it) and
against what landed in Postgres, row by row.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client

from app.platform.client import HaulClient
from tests.file_scan import scan_file
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file

PACKAGE_SAMPLES = Path(__file__).resolve().parents[3] / "app" / "formats" / "samples"
REAL = Path(__file__).resolve().parents[4] / "shared" / "samples" / "edi210"


def real_files() -> list[Path]:
    """The real files; a missing folder fails the test that needs it, never skips it."""
    if not REAL.is_dir():
        pytest.fail(f"the shared real-sample folder {REAL} is missing: check out ../shared "
                    "next to the project", pytrace=False)
    return sorted(p for p in REAL.glob("*") if p.name != "PROVENANCE.md")


def check_against_file(env: ParcelEnv, path: Path, content_hash: str, strict: bool) -> None:
    scan = scan_file(path, strict_envelope=strict)
    rows = env.rows(
        """select i.invoice_number, r.group_count, r.charge_count, r.charges_total,
                  (select count(*) from parcel_charge_groups g where g.revision_id = r.id),
                  (select count(*) from parcel_charges c join parcel_charge_groups g
                     on g.id = c.group_id where g.revision_id = r.id),
                  (select coalesce(sum(c.amount), 0) from parcel_charges c
                     join parcel_charge_groups g on g.id = c.group_id where g.revision_id = r.id)
           from parcel_invoice_revisions r join parcel_invoices i on i.id = r.invoice_id
           where r.file_hash = %s order by r.file_index""",
        content_hash,
    )
    expected = [
        (s.invoice_number, s.group_count, s.charge_count, s.charges_total) for s in scan.invoices
    ]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == expected
    # the stored rows themselves, not only the revision's counters
    assert [(r[0], r[4], r[5], r[6]) for r in rows] == expected
    findings = env.one(
        """select count(*) from audit_findings f join parcel_invoice_revisions r
           on r.id = f.revision_id where r.file_hash = %s""",
        content_hash,
    )
    assert findings == sum(s.group_count for s in scan.invoices)


@pytest.mark.parametrize(
    "name", ["edi210_sample.edi", "ups_billing_sample.csv", "fedex_billing_sample.csv"]
)
async def test_shipped_sample_is_ingested_with_counts_and_totals_of_the_file(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    name: str,
) -> None:
    path = PACKAGE_SAMPLES / name
    async with parcel_worker(client, task_queue, parcel_env):
        summary, ran = await run_file(haul_client, parcel_env, path, task_queue)
    scan = scan_file(path)
    assert summary.outcome == "completed" and summary.failures == 0
    assert summary.invoices == scan.invoice_count == summary.invoices_ok
    assert summary.charges == scan.charge_count
    assert Decimal(summary.charges_total) == sum(s.charges_total for s in scan.invoices)
    check_against_file(parcel_env, path, summary.content_hash, strict=True)
    queued = parcel_env.one(
        """select count(*) from review_queue q join parcel_invoice_revisions r
           on r.id = q.revision_id where r.file_hash = %s""",
        summary.content_hash,
    )
    assert summary.discrepancies == queued


async def test_every_real_210_file_is_ingested_with_its_totals(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    files = real_files()
    assert files
    async with parcel_worker(client, task_queue, parcel_env):
        for path in files:
            if path.suffix == ".json":  # the Stedi file: the EDI text is its `data` field
                unwrapped = tmp_path / (path.stem + ".edi")
                unwrapped.write_text(json.loads(path.read_text())["data"])
                path = unwrapped
            strict = not scan_file(path, strict_envelope=False).envelope_issues
            summary, _ = await run_file(
                haul_client, parcel_env, path, task_queue, strict_envelope=strict
            )
            assert summary.outcome == "completed", (path.name, summary)
            assert summary.failures == 0, (path.name, summary.failure_reasons)
            check_against_file(parcel_env, path, summary.content_hash, strict=strict)
            if not strict:
                assert summary.envelope_issues, path.name
