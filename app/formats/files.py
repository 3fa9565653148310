"""From a carrier file to its invoice events: the one entry point of the parsing layer.

Whoever holds a carrier file (the indexing activity, a test) calls ``parse_file``. It detects
the format from the first bytes, routes the file to the X12 210 or the CSV parser, and hands
back the events with what the X12 envelope reported on the way, so no caller ever picks a parser
or re-implements that dispatch. Whole invoices, scans and indexes are built on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Protocol

from app.formats.csv_parse import RowCounts, csv_parser
from app.formats.detect import HEAD_SIZE, FileFormat, detect_format
from app.formats.edi210 import Edi210Parser
from app.formats.invoice import (
    CsvFormatError,
    EmptyFileError,
    InvalidAmountError,
    InvoiceError,
    InvoiceEvent,
    InvoiceStructureError,
    ParseLimits,
    TotalsMismatchError,
    UnknownCarrierError,
    UnrecognizedFormatError,
)
from app.formats.x12 import (
    EnvelopeIssue,
    NotX12Error,
    X12EnvelopeError,
    X12Error,
    X12Reader,
    X12SyntaxError,
)


class Readable(Protocol):
    """Anything with a binary ``read``: a file, an S3 body, a wrapper that reports progress."""

    def read(self, size: int = -1, /) -> bytes: ...


# a path (str or Path), the file's bytes, or a binary stream such as an S3 body
FileSource = str | Path | bytes | IO[bytes] | Readable


class FileEvents(Iterator[InvoiceEvent]):
    """The invoice events of one file, read once from start to end.

    ``format`` is known before the first event. ``envelope_issues`` (the count and control
    mismatches an X12 file read with ``strict_envelope=False`` has) grows while the events are
    read, so it is complete once they are exhausted; a CSV file has none. ``rows`` (a CSV
    file's row accounting: read, in invoices, refused) is complete at the same point; an X12
    file has None.
    """

    def __init__(self, format: FileFormat, events: Iterator[InvoiceEvent],
                 reader: X12Reader | None = None, rows: RowCounts | None = None) -> None:
        self.format = format
        self._events = events
        self._reader = reader
        self.rows = rows

    def __next__(self) -> InvoiceEvent:
        return next(self._events)

    @property
    def envelope_issues(self) -> list[EnvelopeIssue]:
        return list(self._reader.issues) if self._reader is not None else []


def parse_file(source: FileSource, *, carrier: str | None = None,
               strict_envelope: bool = True, limits: ParseLimits | None = None) -> FileEvents:
    """Detect a file's format and stream its invoice events, in bounded memory.

    File-level bad input (empty, neither EDI nor a known CSV, a ``carrier`` that is unknown or
    does not fit) raises here, before any event; a malformed envelope raises while reading.
    A path is opened only while its events are read, and closed when they end. ``limits``
    caps what one invoice, charge group or line may hold.
    """
    head, chunks = _head_and_chunks(source)
    found = detect_format(head, carrier=carrier)
    if found is FileFormat.EDI_X12:
        parser = Edi210Parser(chunks, strict_envelope=strict_envelope, limits=limits)
        return FileEvents(found, parser.events(), parser.reader)
    layout = "ups" if found is FileFormat.UPS_CSV else "fedex"
    rows = csv_parser(chunks, layout, limits)
    return FileEvents(found, rows.events(), rows=rows.counts)


def _head_and_chunks(source: FileSource) -> tuple[bytes, Iterable[bytes]]:
    """The first bytes of a source, for detection, and all of its bytes, head included."""
    if isinstance(source, bytes):
        return source[:HEAD_SIZE], [source]
    if isinstance(source, str | Path):
        path = Path(source)
        with path.open("rb") as stream:
            head = stream.read(HEAD_SIZE)
        return head, _path_chunks(path)
    head = source.read(HEAD_SIZE)
    return head, itertools.chain([head], _stream_chunks(source))


def _stream_chunks(stream: IO[bytes] | Readable) -> Iterator[bytes]:
    return iter(lambda: stream.read(HEAD_SIZE), b"")


def _path_chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        yield from _stream_chunks(stream)


# every error_type parse_file and its events raise; none of them is worth a retry
NON_RETRYABLE_ERROR_TYPES: tuple[str, ...] = tuple(cls.error_type for cls in (
    EmptyFileError, UnrecognizedFormatError, UnknownCarrierError, CsvFormatError, InvoiceError,
    InvalidAmountError, TotalsMismatchError, InvoiceStructureError, X12Error, NotX12Error,
    X12SyntaxError, X12EnvelopeError,
))
