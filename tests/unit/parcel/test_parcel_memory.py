"""A 200,000-charge invoice parses in bounded memory: parsing streams, it never loads the file.

This is a memory bound measured with tracemalloc, not a timing.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from app.formats.files import parse_file
from app.formats.generator import Edi210Spec, EdiQuirks, write_edi210
from app.formats.invoice import ChargeGroupParsed, InvoiceFailed, InvoiceFinished

MIB = 1 << 20


def test_200k_charge_invoice_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "huge.edi"
    report = write_edi210(path, Edi210Spec(
        invoices=1, groups_per_invoice=50_000, charges_per_group=4, discount_every=0,
        quirks=EdiQuirks(newline="\r\n"),
    ))
    assert report.charges == 200_000
    size = path.stat().st_size
    groups = 0
    summary = None
    tracemalloc.start()
    try:
        for event in parse_file(path):
            if isinstance(event, ChargeGroupParsed):
                groups += 1
            elif isinstance(event, InvoiceFinished):
                summary = event.summary
            elif isinstance(event, InvoiceFailed):
                raise AssertionError(event.failure)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary is not None and groups == 50_000
    assert summary.charge_count == 200_000 and summary.charges_total == report.total
    # loading the file (let alone its 350,000 segments) would cost more than the file's size
    assert size > 10 * MIB
    assert peak < 64 * MIB and peak < size / 4, f"peak {peak / MIB:.1f} MiB for {size} bytes"
