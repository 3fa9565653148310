"""parse_file, the one way from a file to its events: every kind of source, and what it reports."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from csv_generator import CsvSpec, write_fedex_csv, write_ups_csv
from parcel_helpers import interchange, invoice_body, transaction_set

from app.formats.detect import FileFormat
from app.formats.files import FileSource, parse_file
from app.formats.generator import Edi210Spec, EdiQuirks, write_edi210
from app.formats.invoice import (
    EmptyFileError,
    InvoiceFinished,
    UnknownCarrierError,
    UnrecognizedFormatError,
)
from app.formats.x12 import X12EnvelopeError


def _sources(path: Path) -> list[FileSource]:
    data = path.read_bytes()
    return [path, str(path), data, io.BytesIO(data)]


@pytest.mark.parametrize("fmt", list(FileFormat))
def test_every_kind_of_source_gives_the_same_events(tmp_path: Path, fmt: FileFormat) -> None:
    path = tmp_path / "file"
    # large enough that the stream is read in several chunks after the head
    if fmt is FileFormat.EDI_X12:
        write_edi210(path, Edi210Spec(invoices=400, quirks=EdiQuirks(newline="\r\n")))
    elif fmt is FileFormat.UPS_CSV:
        write_ups_csv(path, CsvSpec(invoices=60))
    else:
        write_fedex_csv(path, CsvSpec(invoices=400))
    assert path.stat().st_size > 3 * (1 << 16)
    streams = [parse_file(source) for source in _sources(path)]
    assert [events.format for events in streams] == [fmt] * 4
    first, *others = [list(events) for events in streams]
    assert sum(isinstance(e, InvoiceFinished) for e in first) > 50
    for other in others:
        assert other == first


def test_envelope_issues_come_with_the_events() -> None:
    text = interchange([[transaction_set(invoice_body(), se_count=2)]], iea_count=3)
    events = parse_file(text.encode(), strict_envelope=False)
    assert events.envelope_issues == []  # nothing is read before the first event
    assert [type(e).__name__ for e in events][-1] == "InvoiceFinished"
    assert [(i.segment, i.position) for i in events.envelope_issues] == [("SE", 19), ("IEA", 21)]
    with pytest.raises(X12EnvelopeError, match="SE01 says '2'"):
        list(parse_file(text.encode()))


def test_csv_files_have_no_envelope() -> None:
    out = io.StringIO()
    write_ups_csv(out, CsvSpec(invoices=1))
    events = parse_file(out.getvalue().encode())
    assert events.format is FileFormat.UPS_CSV
    assert len(list(events)) > 1 and events.envelope_issues == []


def test_file_level_errors_raise_before_any_event(tmp_path: Path) -> None:
    with pytest.raises(EmptyFileError):
        parse_file(b"\r\n")
    with pytest.raises(UnrecognizedFormatError):
        parse_file(io.BytesIO(b"%PDF-1.7\n"))
    with pytest.raises(UnknownCarrierError):
        parse_file(b"ISA*00*", carrier="nope")
    with pytest.raises(FileNotFoundError):
        parse_file(tmp_path / "missing.edi")


def _open_handles(path: Path) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if fd.resolve() == path.resolve())


def test_a_path_is_open_only_while_its_events_are_read(tmp_path: Path) -> None:
    assert Path("/proc/self/fd").is_dir(), "counting open handles needs /proc/self/fd (Linux)"
    path = tmp_path / "two.edi"
    write_edi210(path, Edi210Spec(invoices=2))
    events = parse_file(path)
    assert events.format is FileFormat.EDI_X12 and _open_handles(path) == 0
    next(events)
    assert _open_handles(path) == 1
    assert len(list(events)) > 1 and _open_handles(path) == 0
