"""Generator round trips: what the generator says it wrote is what the parsers read back."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from csv_generator import CsvSpec, write_fedex_csv, write_ups_csv
from parcel_helpers import (
    ALL_QUIRKS,
    iter_csv_invoices,
    iter_edi210_invoices,
    iter_file_invoices,
    sized_spec,
    write_samples,
)

from app.formats.detect import FileFormat
from app.formats.files import parse_file
from app.formats.generator import Edi210Spec, EdiQuirks, GenerationReport, write_edi210
from app.formats.invoice import (
    Invoice,
    InvoiceFailed,
    InvoiceFailure,
    InvoiceFinished,
    InvoiceResult,
)
from tests.file_scan import FileScan, scan_file

SAMPLES = Path(__file__).resolve().parents[3] / "app" / "formats" / "samples"


def _compare(results: list[InvoiceResult], report: GenerationReport) -> None:
    assert len(results) == len(report.invoices)
    for result, expected in zip(results, report.invoices, strict=True):
        if expected.expected_error is None:
            assert isinstance(result, Invoice), result
            s = result.summary
            assert s.invoice_number == expected.invoice_number
            assert (s.group_count, s.charge_count) == (expected.groups, expected.charges)
            assert s.charges_total == expected.total
            assert s.needs_review_count == expected.needs_review
        else:
            assert isinstance(result, InvoiceFailure), result
            assert result.error_type == expected.expected_error
            assert result.invoice_number == expected.invoice_number


@pytest.mark.parametrize("quirks", [EdiQuirks(), ALL_QUIRKS,
                                    EdiQuirks(terminator="\n", bom=True, fixed_isa=False)],
                         ids=["clean", "all-quirks", "newline-terminator"])
def test_edi_round_trip_with_bad_invoices(quirks: EdiQuirks) -> None:
    buf = io.StringIO()
    report = write_edi210(buf, Edi210Spec(
        invoices=12, groups_per_invoice=5, charges_per_group=3, functional_groups=3, seed=11,
        discount_every=2, bad_amount=frozenset({2, 9}), total_mismatch=frozenset({5}),
        negative_charge=frozenset({7}), purposes={3: "04", 4: "01"}, quirks=quirks,
    ))
    assert [i.index for i in report.bad] == [2, 5, 9]
    assert report.invoices[7].needs_review == 1
    results = list(iter_edi210_invoices(buf.getvalue()))
    _compare(results, report)
    purposes = [r.header.purpose.value for r in results if isinstance(r, Invoice)][2:4]
    assert purposes == ["change", "cancel"]


def test_csv_round_trips() -> None:
    spec = CsvSpec(invoices=6, shipments_per_invoice=4, charges_per_shipment=3, seed=5,
                   credit_every=2, bad_amount=frozenset({1}), total_mismatch=frozenset({3}),
                   negative_charge=frozenset({4}))
    ups, fedex = io.StringIO(), io.StringIO()
    report = write_ups_csv(ups, spec)
    _compare(list(iter_csv_invoices(ups.getvalue(), "ups")), report)
    report = write_fedex_csv(fedex, spec)
    _compare(list(iter_csv_invoices(fedex.getvalue(), "fedex")), report)


def test_generation_is_deterministic() -> None:
    def edi(seed: int) -> str:
        buf = io.StringIO()
        write_edi210(buf, Edi210Spec(invoices=3, seed=seed, quirks=ALL_QUIRKS))
        return buf.getvalue()

    def ups(seed: int) -> str:
        buf = io.StringIO()
        write_ups_csv(buf, CsvSpec(invoices=2, seed=seed))
        return buf.getvalue()

    assert edi(1) == edi(1) and edi(1) != edi(2)
    assert ups(1) == ups(1) and ups(1) != ups(2)


def test_committed_samples_are_the_generator_output(tmp_path: Path) -> None:
    reports = write_samples(tmp_path)
    names = sorted(r.path.name for r in reports if r.path is not None)
    assert names == sorted(p.name for p in SAMPLES.iterdir())
    for name in names:
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
    for report in reports:
        assert report.path is not None
        _compare(list(iter_file_invoices(SAMPLES / report.path.name)), report)


def test_ten_thousand_invoices(tmp_path: Path) -> None:
    path = tmp_path / "many.edi"
    report = write_edi210(path, Edi210Spec(invoices=10_000, groups_per_invoice=1,
                                           charges_per_group=1, functional_groups=4,
                                           discount_every=0, bad_amount=frozenset({4321}),
                                           quirks=EdiQuirks(newline="\n")))
    finished = 0
    charges = 0
    seen_total = Decimal("0")
    failed = []
    for event in parse_file(path):
        if isinstance(event, InvoiceFinished):
            finished += 1
            charges += event.summary.charge_count
            seen_total += event.summary.charges_total
        elif isinstance(event, InvoiceFailed):
            failed.append(event.failure.index)
    assert finished == 9_999 and failed == [4321]
    assert len(report.good) == 9_999
    assert charges == report.charges and seen_total == report.total


def test_scan_file_summarizes_without_groups(tmp_path: Path) -> None:
    path = tmp_path / "mixed.edi"
    report = write_edi210(path, Edi210Spec(invoices=8, functional_groups=2, seed=3,
                                           bad_amount=frozenset({1}),
                                           total_mismatch=frozenset({6})))
    scan = scan_file(path)
    assert scan.format is FileFormat.EDI_X12 and scan.invoice_count == 8
    assert [f.index for f in scan.failures] == [1, 6]
    assert [f.error_type for f in scan.failures] == ["ParcelInvalidAmount", "ParcelTotalsMismatch"]
    assert scan.charge_count == report.charges
    assert sum(s.charges_total for s in scan.invoices) == report.total
    assert FileScan.model_validate_json(scan.model_dump_json()) == scan


def test_models_survive_json(tmp_path: Path) -> None:
    buf = io.StringIO()
    write_edi210(buf, Edi210Spec(invoices=1, discount_every=1))
    [inv] = iter_edi210_invoices(buf.getvalue())
    assert isinstance(inv, Invoice)
    again = Invoice.model_validate_json(inv.model_dump_json())
    assert again == inv
    assert any(c.amount < 0 for g in again.charge_groups for c in g.charges)


@pytest.mark.parametrize("charges,per_group", [(10, 1), (1_000, 4), (12, 4)])
def test_sized_specs_hold_exactly_the_charges_asked_for(charges: int, per_group: int) -> None:
    spec = sized_spec(3, charges, seed=2)
    assert spec.charges_per_group == per_group
    buf = io.StringIO()
    report = write_edi210(buf, spec)
    results = list(iter_edi210_invoices(buf.getvalue()))
    assert [r.summary.charge_count for r in results if isinstance(r, Invoice)] == [charges] * 3
    _compare(results, report)
