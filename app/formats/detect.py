"""Decide what a carrier file is (X12 EDI, UPS CSV, FedEx CSV) from its first bytes.

``haul ingest parcel FILE [--carrier X]`` and the indexing activity hand over a file they know
nothing about. Detection looks at the head only and rejects what is empty, or is neither EDI nor
a known CSV layout, with a typed error; ``files.parse_file`` then routes the whole file to the
parser of the format found here.
"""

from __future__ import annotations

import csv
import re
from enum import StrEnum

from app.formats import csv_layouts as L
from app.formats.invoice import EmptyFileError, UnrecognizedFormatError, parse_date

HEAD_SIZE = 1 << 16  # the bytes detection looks at; also the read size of parse_file
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
    first_line = re.split(r"[\r\n]", body, maxsplit=1)[0]  # CR and LF only end a line
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
