"""Every shipped sample and every real 210 file, through the whole pipeline on the dev stack.

Counts and totals come from tests/parcel_expected.py (written by hand and pinned in the unit
tier against the generator and the files), never from haul's parser, and are checked against
what landed in Postgres, row by row.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.client import Client

from app.platform.client import HaulClient
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file
from tests.parcel_expected import ENVELOPE_ISSUES, REAL, SHIPPED, InvoiceFigures, shared_samples

PACKAGE_SAMPLES = Path(__file__).resolve().parents[3] / "app" / "formats" / "samples"


def real_files() -> list[Path]:
    """The real files; a missing folder fails the test that needs it, never skips it."""
    return sorted(p for p in shared_samples().glob("*") if p.name != "PROVENANCE.md")


def check_stored(env: ParcelEnv, expected: list[InvoiceFigures], content_hash: str) -> None:
    """The revisions and rows stored for a file hold the expected figures, in file order; an
    invoice number of None in the table is not compared."""
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
    want = [(e.invoice_number, e.groups, e.charges, e.total) for e in expected]

    def number(stored: object, pinned: str | None) -> object:
        return stored if pinned is not None else None

    counters = [(number(r[0], w[0]), r[1], r[2], r[3]) for r, w in zip(rows, want, strict=False)]
    assert len(rows) == len(want) and counters == want
    # the stored rows themselves, not only the revision's counters
    stored = [(number(r[0], w[0]), r[4], r[5], r[6]) for r, w in zip(rows, want, strict=False)]
    assert stored == want
    findings = env.one(
        """select count(*) from audit_findings f join parcel_invoice_revisions r
           on r.id = f.revision_id where r.file_hash = %s""",
        content_hash,
    )
    assert findings == sum(e.groups for e in expected)


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
    expected = SHIPPED[name]
    assert summary.outcome == "completed" and summary.failures == 0
    assert summary.invoices == len(expected) == summary.invoices_ok
    assert summary.charges == sum(e.charges for e in expected)
    assert Decimal(summary.charges_total) == sum(e.total for e in expected)
    check_stored(parcel_env, expected, summary.content_hash)
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
            expected, strict = REAL[path.name], path.name not in ENVELOPE_ISSUES
            if path.suffix == ".json":  # the Stedi file: the EDI text is its `data` field
                unwrapped = tmp_path / (path.stem + ".edi")
                unwrapped.write_text(json.loads(path.read_text())["data"])
                path = unwrapped
            summary, _ = await run_file(
                haul_client, parcel_env, path, task_queue, strict_envelope=strict
            )
            assert summary.outcome == "completed", (path.name, summary)
            assert summary.failures == 0, (path.name, summary.failure_reasons)
            assert summary.invoices == len(expected), path.name
            check_stored(parcel_env, expected, summary.content_hash)
            if not strict:
                assert summary.envelope_issues, path.name
