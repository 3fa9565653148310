"""Decide what a carrier file is (X12 EDI, UPS CSV, FedEx CSV) and route it to its parser.

``haul ingest parcel FILE [--carrier X]`` and the splitter activity hand us a file they know
nothing about. This module looks at the first bytes only, rejects what is empty or is neither EDI
nor a known CSV layout with a typed error, and then streams the whole file through the right
parser without reading it twice.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
from collections.abc import Iterable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from app.formats import csv_layouts as L
from app.formats.csv_parse import iter_csv_events
from app.formats.edi210 import Edi210Parser, iter_edi210_events
from app.formats.invoice import (
    EmptyFileError,
    InvoiceEvent,
    InvoiceFailed,
    InvoiceFailure,
    InvoiceFinished,
    InvoiceResult,
    InvoiceSummary,
    UnrecognizedFormatError,
    collect_invoices,
    parse_date,
)

HEAD_SIZE = 1 << 16
_WHITESPACE = "\ufeff \t\r\n\x00"


class FileFormat(StrEnum):
    EDI_X12 = "edi_x12"
    UPS_CSV = "ups_csv"
    FEDEX_CSV = "fedex_csv"


def detect_format(head: str | bytes, *, carrier: str | None = None) -> FileFormat:
    """The format of a file from its first bytes (a few KiB are enough).

    ``carrier`` (a name or SCAC) is checked first, so an unknown code fails before anything
    else; a CSV that could be either layout is decided by it.
    """
    info = L.resolve_carrier(carrier) if carrier else None
    if isinstance(head, bytes):
        if head.startswith(b"%PDF") or head.startswith(b"PK\x03\x04"):
            kind = "a PDF" if head.startswith(b"%PDF") else "a zip archive"
            raise UnrecognizedFormatError(
                f"the file is {kind}, neither X12 EDI nor a carrier CSV; send the EDI 210 or "
                "the billing CSV itself"
            )
        text = head.decode("utf-8", errors="replace")
    else:
        text = head
    body = text.lstrip(_WHITESPACE)
    if not body:
        raise EmptyFileError("the file is empty (or holds only whitespace); send the file "
                             "again with its contents")
    if body.startswith("ISA"):
        return FileFormat.EDI_X12
    if body[0] in "{[":
        raise UnrecognizedFormatError(
            "the file is JSON, neither X12 EDI nor a carrier CSV; if a JSON wrapper holds the "
            "EDI text, unwrap it and send the EDI text itself"
        )
    if "\x00" in body[:4096]:
        raise UnrecognizedFormatError("the file is binary, neither X12 EDI nor a carrier CSV")
    first_line = body.splitlines()[0] if body.splitlines() else body
    try:
        cells = next(csv.reader([first_line]))
    except (csv.Error, StopIteration):
        cells = []
    names = {c.strip() for c in cells}
    fedex_needed = {L.FEDEX_COLUMNS[f] for f in L.FEDEX_REQUIRED}
    if fedex_needed <= names:
        found = FileFormat.FEDEX_CSV
    elif (len(cells) >= L.UPS_MIN_COLUMNS
          and parse_date(cells[L.UPS_COLUMNS["invoice_date"] - 1]) is not None):
        found = FileFormat.UPS_CSV
    else:
        raise UnrecognizedFormatError(
            f"the file is neither X12 EDI (it does not start with ISA) nor a known carrier CSV "
            f"(its first line has {len(cells)} columns: not a UPS billing row of "
            f"{L.UPS_COLUMN_COUNT} with an invoice date in column 5, nor a FedEx header); "
            "check what the carrier sent"
        )
    if info is not None and info.csv_layout and info.csv_layout != found.value.split("_")[0]:
        raise UnrecognizedFormatError(
            f"the file looks like a {found.value} file, but carrier {info.name!r} was given; "
            "check the --carrier option"
        )
    return found


def _chunks(stream: IO[bytes]) -> tuple[bytes, Iterable[bytes]]:
    """The head of a stream and an iterable of all its bytes (head included)."""
    head = stream.read(HEAD_SIZE)
    return head, itertools.chain([head], iter(lambda: stream.read(HEAD_SIZE), b""))


def iter_file_events(source: str | Path | IO[bytes] | bytes, *, carrier: str | None = None,
                     strict_envelope: bool = True) -> Iterator[InvoiceEvent]:
    """Detect the format and stream the invoice events of a whole file."""
    chunks: Iterable[bytes]
    with contextlib.ExitStack() as stack:
        if isinstance(source, bytes):
            head, chunks = source[:HEAD_SIZE], [source]
        elif isinstance(source, str | Path):
            head, chunks = _chunks(stack.enter_context(Path(source).open("rb")))
        else:
            head, chunks = _chunks(source)
        found = detect_format(head, carrier=carrier)
        if found is FileFormat.EDI_X12:
            yield from iter_edi210_events(chunks, strict_envelope=strict_envelope)
        else:
            layout = "ups" if found is FileFormat.UPS_CSV else "fedex"
            yield from iter_csv_events(chunks, layout)


def iter_file_invoices(source: str | Path | IO[bytes] | bytes, *, carrier: str | None = None,
                       strict_envelope: bool = True) -> Iterator[InvoiceResult]:
    """Whole invoices (or per-invoice failures) of a file of any known format."""
    return collect_invoices(iter_file_events(source, carrier=carrier,
                                             strict_envelope=strict_envelope))


class FileScan(BaseModel):
    """What a first, cheap pass over a file found: per-invoice summaries and failures only (no
    charge groups), so a splitter knows its totals before it starts any child."""

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


def scan_file(source: str | Path | IO[bytes] | bytes, *, carrier: str | None = None,
              strict_envelope: bool = True) -> FileScan:
    """Read a whole file once, checking the envelope and every invoice's totals, and keep only
    summaries. File-level errors (envelope, layout, empty, unknown format) raise."""
    if isinstance(source, bytes):
        head = source[:HEAD_SIZE]
    elif isinstance(source, str | Path):
        with Path(source).open("rb") as stream:
            head = stream.read(HEAD_SIZE)
    else:
        raise TypeError("scan_file needs a path or bytes, so the file can be read again later")
    found = detect_format(head, carrier=carrier)
    invoices: list[InvoiceSummary] = []
    failures: list[InvoiceFailure] = []
    issues: list[str] = []
    chunks: Iterable[bytes]
    with contextlib.ExitStack() as stack:
        if isinstance(source, bytes):
            chunks = [source]
        else:
            _, chunks = _chunks(stack.enter_context(Path(source).open("rb")))
        if found is FileFormat.EDI_X12:
            parser = Edi210Parser(chunks, strict_envelope=strict_envelope)
            events: Iterable[InvoiceEvent] = parser.events()
        else:
            parser = None
            events = iter_csv_events(chunks, "ups" if found is FileFormat.UPS_CSV else "fedex")
        for event in events:
            if isinstance(event, InvoiceFinished):
                invoices.append(event.summary)
            elif isinstance(event, InvoiceFailed):
                failures.append(event.failure)
        if parser is not None:
            issues = [i.message for i in parser.reader.issues]
    return FileScan(format=found, invoices=invoices, failures=failures, envelope_issues=issues)


def _error_types() -> tuple[str, ...]:
    from app.formats import invoice, x12

    classes = (invoice.EmptyFileError, invoice.UnrecognizedFormatError,
               invoice.UnknownCarrierError, invoice.CsvFormatError, invoice.InvoiceError,
               invoice.InvalidAmountError, invoice.TotalsMismatchError,
               invoice.InvoiceStructureError, x12.X12Error, x12.NotX12Error, x12.X12SyntaxError,
               x12.X12EnvelopeError)
    return tuple(cls.error_type for cls in classes)


# every error_type the parsing layer raises; none of them is worth a retry
NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = _error_types()
