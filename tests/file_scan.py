"""A parse of a whole carrier file kept to per-invoice summaries, for the tests that compare
what the pipeline stored with what the file itself holds (unit, integration and stack tiers).
"""

from __future__ import annotations

from pydantic import BaseModel

from app.formats.detect import FileFormat
from app.formats.files import FileSource, parse_file
from app.formats.invoice import InvoiceFailed, InvoiceFailure, InvoiceFinished, InvoiceSummary


class FileScan(BaseModel):
    """Per-invoice summaries and failures of a file (no charge groups)."""

    format: FileFormat
    invoices: list[InvoiceSummary]
    failures: list[InvoiceFailure]
    envelope_issues: list[str] = []

    @property
    def invoice_count(self) -> int:
        return len(self.invoices) + len(self.failures)

    @property
    def charge_count(self) -> int:
        return sum(s.charge_count for s in self.invoices)


def scan_file(source: FileSource, *, carrier: str | None = None,
              strict_envelope: bool = True) -> FileScan:
    """Read a whole file once through ``parse_file``. File-level errors (envelope, layout,
    empty, unknown format) raise, as they do in the pipeline."""
    events = parse_file(source, carrier=carrier, strict_envelope=strict_envelope)
    invoices: list[InvoiceSummary] = []
    failures: list[InvoiceFailure] = []
    for event in events:
        if isinstance(event, InvoiceFinished):
            invoices.append(event.summary)
        elif isinstance(event, InvoiceFailed):
            failures.append(event.failure)
    return FileScan(format=events.format, invoices=invoices, failures=failures,
                    envelope_issues=[issue.message for issue in events.envelope_issues])
