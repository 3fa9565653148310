"""What the sample files hold, written down by hand, so that pipeline tests compare what was
stored with figures that do not come from haul's own parser.

The unit tier pins both tables: the shipped samples against the generator's own record of what
it wrote (tests/unit/parcel/test_parcel_expected.py), the real files against the parser
(tests/unit/parcel/test_parcel_real_samples.py).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import NamedTuple

import pytest

SHARED_SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "samples" / "edi210"


class InvoiceFigures(NamedTuple):
    """One invoice: its number (None where the table does not pin it), charge groups, charges
    and the sum of its charges."""

    invoice_number: str | None
    groups: int
    charges: int
    total: Decimal


def _same(count: int, groups: int, charges: int, total: str) -> list[InvoiceFigures]:
    return [InvoiceFigures(None, groups, charges, Decimal(total))] * count


# app/formats/samples, as tests/unit/parcel/parcel_helpers.write_samples generates them
SHIPPED: dict[str, list[InvoiceFigures]] = {
    "edi210_sample.edi": [
        InvoiceFigures("0700000001", 3, 6, Decimal("1650.25")),
        InvoiceFigures("0700000002", 3, 6, Decimal("1529.77")),
        InvoiceFigures("0700000003", 3, 6, Decimal("1245.11")),
        InvoiceFigures("0700000004", 3, 6, Decimal("1226.77")),
    ],
    "ups_billing_sample.csv": [
        InvoiceFigures("000007000001", 3, 10, Decimal("362.04")),
        InvoiceFigures("000007000002", 3, 10, Decimal("343.46")),
        InvoiceFigures("000007000003", 3, 10, Decimal("423.59")),
    ],
    "fedex_billing_sample.csv": [
        InvoiceFigures("707000001", 3, 10, Decimal("198.23")),
        InvoiceFigures("707000002", 3, 10, Decimal("152.13")),
        InvoiceFigures("707000003", 3, 10, Decimal("134.64")),
    ],
}

# the real public 210 files in ../shared/samples/edi210, read by eye
REAL: dict[str, list[InvoiceFigures]] = {
    "indice-co_EDI.Net_210-MGCTLYST-SAMPLE.EDI": _same(1, 4, 4, "659.40"),
    "Inteligenz_X12Parser_DBSchenker_SampleMotorFreightDetailsAndInvoice.txt":
        _same(1, 1, 2, "46.40"),
    "Inteligenz_X12Parser_CN_FreightInvoiceSample1.txt": _same(1, 1, 2, "2754.33"),
    "Stedi-Demos_bootstrap-archived_multi-gs-multi-txn-multi-lx.json": _same(4, 5, 5, "0"),
}

# (segment, position) of every envelope mismatch each real file has
ENVELOPE_ISSUES: dict[str, list[tuple[str, int]]] = {
    # GS06 is 1 but GE02 is 24 (the ISA/IEA control number)
    "Inteligenz_X12Parser_DBSchenker_SampleMotorFreightDetailsAndInvoice.txt": [("GE", 25)],
    # masked fixture with LX loops added: SE01 stays 29 (81 segments), GE01 is 1 for a group of
    # two sets, IEA01 is 1 for three groups
    "Stedi-Demos_bootstrap-archived_multi-gs-multi-txn-multi-lx.json": [
        ("SE", 83), ("SE", 166), ("SE", 247), ("GE", 248), ("SE", 330), ("IEA", 332)],
}


def shared_samples() -> Path:
    """The real-sample folder; a missing one fails the calling test, it never skips."""
    if not SHARED_SAMPLES.is_dir():
        pytest.fail(f"the shared real-sample folder {SHARED_SAMPLES} is missing: check out "
                    "../shared next to the project", pytrace=False)
    return SHARED_SAMPLES
