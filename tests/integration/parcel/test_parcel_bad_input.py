"""Bad input gets a clear, recorded error, and the rest of the file goes on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError

from app.domains.parcel.models import child_identifier
from app.formats.generator import Edi210Spec, write_edi210
from app.formats.x12 import X12EnvelopeError
from app.platform.client import HaulClient
from app.platform.ids import workflow_id
from tests.file_scan import scan_file
from tests.integration.failure_checks import recorded_failures
from tests.integration.parcel.conftest import ParcelEnv, parcel_worker, run_file

SAMPLE = Path(__file__).resolve().parents[3] / "app" / "formats" / "samples"


async def test_bad_invoices_fail_alone_and_are_recorded_with_their_reason(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    spec = Edi210Spec(invoices=12, groups_per_invoice=3, charges_per_group=2, seed=1044,
                      bad_amount=frozenset({3}), total_mismatch=frozenset({7}),
                      negative_charge=frozenset({5}))
    report = write_edi210(tmp_path / "mixed.edi", spec)
    async with parcel_worker(client, task_queue, parcel_env):
        summary, _ = await run_file(haul_client, parcel_env, tmp_path / "mixed.edi", task_queue)

    bad = {i.index: i.expected_error for i in report.bad}
    assert bad == {3: "ParcelInvalidAmount", 7: "ParcelTotalsMismatch"}
    assert summary.outcome == "completed"
    assert summary.invoices == 12 and summary.invoices_ok == 10 and summary.failures == 2
    assert {f.index: f.error_type for f in summary.failure_reasons} == bad
    assert summary.charges == report.charges

    h = summary.content_hash
    # the parser's reason, with where it was found, in the parcel failure table ...
    stored = parcel_env.rows(
        "select file_index, error_type, message, segment, position "
        "from parcel_invoice_failures where file_hash = %s order by file_index", h)
    assert {r[0]: r[1] for r in stored} == bad
    assert all(r[2] and r[3] and r[4] for r in stored)
    # ... and each failed child in the failure store, with its arguments, for redrive
    for index, error_type in bad.items():
        wf_id = workflow_id("ParcelInvoice", child_identifier(h, index))
        records = await recorded_failures(client, parcel_env.database.dsn, wf_id)
        assert [r.error_type for r in records] == [error_type]
        assert records[0].arguments[0]["index"] == index
    # the negative non-credit charge is queued for review, not rejected
    reasons = parcel_env.rows(
        """select q.reason from review_queue q join parcel_invoice_revisions r
           on r.id = q.revision_id where r.file_hash = %s and r.file_index = 5""", h)
    assert any("negative" in r[0] for r in reasons)


async def reject(
    client: Client, haul: HaulClient, env: ParcelEnv, task_queue: str, path: Path,
    **options: object,
) -> ApplicationError:
    async with parcel_worker(client, task_queue, env):
        with pytest.raises(WorkflowFailureError) as caught:
            await run_file(haul, env, path, task_queue, **options)
    cause = caught.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    return cause


async def assert_recorded(
    client: Client, env: ParcelEnv, path: Path, haul: HaulClient, error_type: str
) -> None:
    from app.domains.parcel.starter import content_hash
    from app.domains.parcel.workflows import ParcelIngestWorkflow

    wf_id = haul.id_for(ParcelIngestWorkflow.run, content_hash(path))
    records = await recorded_failures(client, env.database.dsn, wf_id)
    assert [r.error_type for r in records] == [error_type]
    assert env.one("select outcome from idempotency where workflow_id = %s", wf_id) == "rejected"


async def test_malformed_envelope_rejects_the_file_naming_segment_and_position(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    text = (SAMPLE / "edi210_sample.edi").read_text(encoding="utf-8-sig")
    path = tmp_path / "bad-envelope.edi"
    path.write_text(text.replace("SE*31*0001", "SE*30*0001"))
    with pytest.raises(X12EnvelopeError) as parsed:
        scan_file(path)
    cause = await reject(client, haul_client, parcel_env, task_queue, path)
    assert cause.type == "X12Envelope"
    assert f"SE at segment {parsed.value.position}" in cause.message
    assert cause.details and cause.details[0]["segment"] == "SE"
    assert cause.details[0]["position"] == parsed.value.position
    await assert_recorded(client, parcel_env, path, haul_client, "X12Envelope")
    # nothing of the file was written
    assert parcel_env.one(
        "select count(*) from parcel_invoice_revisions r join parcel_files f "
        "on f.content_hash = r.file_hash where f.file_name = %s", path.name) == 0


@pytest.mark.parametrize(
    ("name", "content", "error_type"),
    [
        ("empty.edi", b"", "ParcelEmptyFile"),
        ("blank.csv", b"  \r\n\r\n", "ParcelEmptyFile"),
        ("wrapped.json", json.dumps({"data": "ISA*00*..."}).encode(), "ParcelUnrecognizedFormat"),
        ("notes.txt", b"hello carrier,\nplease find attached\n", "ParcelUnrecognizedFormat"),
        ("invoice.pdf", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "ParcelUnrecognizedFormat"),
    ],
)
async def test_files_that_are_not_invoices_are_rejected_with_their_type(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path, name: str, content: bytes, error_type: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    cause = await reject(client, haul_client, parcel_env, task_queue, path)
    assert cause.type == error_type
    await assert_recorded(client, parcel_env, path, haul_client, error_type)


async def test_unknown_carrier_code_is_rejected(
    client: Client, haul_client: HaulClient, task_queue: str, parcel_env: ParcelEnv,
    tmp_path: Path,
) -> None:
    path = tmp_path / "ups-as-nope.csv"
    path.write_bytes((SAMPLE / "ups_billing_sample.csv").read_bytes() + b"\n")
    cause = await reject(client, haul_client, parcel_env, task_queue, path, carrier="NOPE")
    assert cause.type == "ParcelUnknownCarrier"
    assert "'NOPE'" in cause.message
    await assert_recorded(client, parcel_env, path, haul_client, "ParcelUnknownCarrier")
