"""The hand-written figures of the shipped samples (tests/parcel_expected.py), which the
pipeline tests take as their expectation, are what the generator says it wrote."""

from __future__ import annotations

from pathlib import Path

from parcel_helpers import write_samples

from tests.parcel_expected import SHIPPED, InvoiceFigures


def test_shipped_figures_are_the_generators_record(tmp_path: Path) -> None:
    recorded = {
        report.path.name: [
            InvoiceFigures(i.invoice_number, i.groups, i.charges, i.total)
            for i in report.invoices
            if i.expected_error is None
        ]
        for report in write_samples(tmp_path)
        if report.path is not None
    }
    assert recorded == SHIPPED
