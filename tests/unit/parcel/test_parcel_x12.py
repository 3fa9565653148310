"""The X12 tokenizer and envelope checks: every real-file quirk, and every envelope error."""

from __future__ import annotations

import io

import pytest
from parcel_helpers import ALL_QUIRKS, interchange, invoice_body, tokenize, transaction_set

from app.formats.generator import Edi210Spec, EdiQuirks, write_edi210
from app.formats.invoice import EmptyFileError
from app.formats.x12 import NotX12Error, X12EnvelopeError, X12Reader, X12SyntaxError


def _generated(quirks: EdiQuirks, **spec: object) -> tuple[str, object]:
    buf = io.StringIO()
    report = write_edi210(buf, Edi210Spec(invoices=3, quirks=quirks, **spec))  # type: ignore[arg-type]
    return buf.getvalue(), report


def _shape(text: str) -> list[tuple[str, list[str]]]:
    """Every segment but the ISA; IEA02 as a number, since a short ISA does not pad ISA13."""
    return [(s.tag, s.elements if s.tag != "IEA" else [s[1], str(int(s[2]))])
            for s in tokenize(text) if s.tag != "ISA"]


CLEAN, _ = _generated(EdiQuirks())


@pytest.mark.parametrize(
    "quirks",
    [
        EdiQuirks(bom=True),
        EdiQuirks(newline="\r\n"),
        EdiQuirks(newline="\n", indent=True),
        EdiQuirks(newline="\r\n", wrap=13),
        EdiQuirks(wrap=7),
        EdiQuirks(terminator="."),
        EdiQuirks(terminator="\n"),
        EdiQuirks(terminator="\n", newline="\r\n"),
        EdiQuirks(fixed_isa=False),
        EdiQuirks(element_separator="|", sub_element_separator="^", terminator="'"),
        ALL_QUIRKS,
    ],
    ids=["bom", "crlf", "indent", "crlf-wrapped", "wrapped", "dot", "newline-term", "crlf-term",
         "short-isa", "other-delims", "all"],
)
def test_each_quirk_tokenizes_to_the_same_segments(quirks: EdiQuirks) -> None:
    text, _ = _generated(quirks)
    assert text != CLEAN or quirks == EdiQuirks()
    expected = _shape(CLEAN)
    if quirks.terminator == ".":  # a '.' terminator leaves no room for decimal rates (L102)
        expected = _shape(_generated(EdiQuirks(terminator="."))[0].replace(".", "~"))
    assert _shape(text) == expected


def test_delimiters_come_from_the_isa_not_fixed_offsets() -> None:
    text, _ = _generated(EdiQuirks(fixed_isa=False, element_separator="|",
                                   sub_element_separator="^", terminator="!"))
    reader = X12Reader(text)
    assert [ts.control for ts in reader.transaction_sets()] == ["0001", "0002", "0003"]
    assert reader.delimiters is not None
    assert (reader.delimiters.element, reader.delimiters.sub_element,
            reader.delimiters.segment) == ("|", "^", "!")
    isa = next(tokenize(text))
    assert len(isa.elements) == 16 and isa[13] == "1" and isa[16] == "^"


def test_streaming_in_tiny_chunks_gives_the_same_segments() -> None:
    text, _ = _generated(ALL_QUIRKS)
    data = text.encode("utf-8")
    chunks = [data[i:i + 5] for i in range(0, len(data), 5)]
    assert _shape(text) == [(s.tag, s.elements) for s in tokenize(iter(chunks))
                            if s.tag != "ISA"]
    assert _shape(text) == [(s.tag, s.elements) for s in tokenize(io.BytesIO(data), chunk_size=3)
                            if s.tag != "ISA"]


def test_positions_count_segments_from_the_isa() -> None:
    positions = [(s.tag, s.position) for s in tokenize(CLEAN)]
    assert positions[:3] == [("ISA", 1), ("GS", 2), ("ST", 3)]
    assert [p for _, p in positions] == list(range(1, len(positions) + 1))


def test_several_groups_and_sets() -> None:
    text, _ = _generated(EdiQuirks(), functional_groups=2)
    reader = X12Reader(text)
    sets = [(ts.group.control, ts.control) for ts in reader.transaction_sets()]
    assert sets == [("1", "0001"), ("1", "0002"), ("2", "0001")]
    assert (reader.interchange_count, reader.group_count, reader.transaction_set_count) == (1, 2, 3)


@pytest.mark.parametrize("text", ["", "   \r\n\t ", "\ufeff\r\n"])
def test_empty_input(text: str) -> None:
    with pytest.raises(EmptyFileError) as err:
        list(tokenize(text))
    assert err.value.error_type == "ParcelEmptyFile"


def test_json_is_rejected_as_not_edi() -> None:
    with pytest.raises(NotX12Error) as err:
        list(tokenize('{"data": "ISA*00*..."}'))
    assert "JSON" in err.value.message and err.value.error_type == "X12NotEdi"


def test_csv_is_rejected_as_not_edi() -> None:
    with pytest.raises(NotX12Error, match="not X12 EDI"):
        list(tokenize("a,b,c\n1,2,3\n"))


def test_truncated_isa() -> None:
    with pytest.raises(X12SyntaxError, match="truncated") as err:
        list(tokenize("ISA*00*          *00*   "))
    assert err.value.segment == "ISA" and err.value.position == 1


def test_wrong_terminator_names_segment_and_position() -> None:
    text = CLEAN.replace("~", "~", 3).replace("N9*", "n9*", 1)
    with pytest.raises(X12SyntaxError) as err:
        list(tokenize(text))
    assert "not a segment ID" in err.value.message
    assert err.value.position is not None and f"segment {err.value.position}" in err.value.message


def _read_all(text: str, strict: bool = True) -> X12Reader:
    reader = X12Reader(text, strict_envelope=strict)
    for ts in reader.transaction_sets():
        for _ in ts.segments():
            pass
    return reader


def test_good_envelope_reads() -> None:
    text = interchange([[transaction_set(invoice_body())]])
    reader = _read_all(text)
    assert reader.issues == [] and reader.transaction_set_count == 1


def test_wrong_se_count() -> None:
    body = invoice_body()
    text = interchange([[transaction_set(body, se_count=len(body) + 5)]])
    with pytest.raises(X12EnvelopeError) as err:
        _read_all(text)
    e = err.value
    assert e.segment == "SE" and e.error_type == "X12Envelope"
    assert e.position == len(body) + 4  # ISA, GS, ST, body..., SE
    assert f"segment {e.position}" in e.message and f"holds {len(body) + 2}" in e.message


def test_mismatched_st_se_control() -> None:
    text = interchange([[transaction_set(invoice_body(), control="0001", se_control="0009")]])
    with pytest.raises(X12EnvelopeError, match="SE02 '0009' does not match ST02 '0001'") as err:
        _read_all(text)
    assert err.value.segment == "SE"


def test_mismatched_gs_ge_control() -> None:
    text = interchange([[transaction_set(invoice_body())]], ge_controls=["77"])
    with pytest.raises(X12EnvelopeError, match="GE02 '77' does not match GS06 '1'") as err:
        _read_all(text)
    assert err.value.segment == "GE"


def test_wrong_ge_count() -> None:
    text = interchange([[transaction_set(invoice_body()), transaction_set(invoice_body(),
                                                                          control="0002")]],
                       ge_counts=[1])
    with pytest.raises(X12EnvelopeError, match="GE01 says '1' transaction sets.*holds 2"):
        _read_all(text)


def test_mismatched_isa_iea() -> None:
    text = interchange([[transaction_set(invoice_body())]], iea_control="000000906")
    with pytest.raises(X12EnvelopeError, match="IEA02 '000000906' does not match ISA13") as err:
        _read_all(text)
    assert err.value.segment == "IEA"


def test_wrong_iea_count() -> None:
    text = interchange([[transaction_set(invoice_body())]], iea_count=2)
    with pytest.raises(X12EnvelopeError, match="IEA01 says '2' functional groups"):
        _read_all(text)


def test_missing_iea() -> None:
    text = interchange([[transaction_set(invoice_body())]], trailer=False)
    with pytest.raises(X12EnvelopeError, match="without an IEA") as err:
        _read_all(text)
    assert err.value.segment == "IEA"
    assert err.value.position == len(invoice_body()) + 6  # one past the last segment


def test_missing_se() -> None:
    text = interchange([[transaction_set(invoice_body())[:-1]]])
    with pytest.raises(X12EnvelopeError, match="has not been closed by an SE") as err:
        _read_all(text)
    assert err.value.segment == "GE"


def test_lenient_envelope_records_issues_instead() -> None:
    body = invoice_body()
    text = interchange([[transaction_set(body, se_count=3)]], ge_controls=["8"])
    reader = _read_all(text, strict=False)
    assert [(i.segment, i.position) for i in reader.issues] == [
        ("SE", len(body) + 4), ("GE", len(body) + 5)]


def test_envelope_is_checked_even_when_the_body_is_not_read() -> None:
    body = invoice_body()
    text = interchange([[transaction_set(body, se_count=4)]])
    reader = X12Reader(text)
    with pytest.raises(X12EnvelopeError, match="SE01 says '4'"):
        for _ in reader.transaction_sets():
            pass


def test_one_byte_chunks_still_detect_non_edi() -> None:
    with pytest.raises(NotX12Error):
        list(tokenize(iter([b"I", b"S", b"B*00*"])))
    text = CLEAN.encode()
    assert len(list(tokenize(iter(text[i:i + 1] for i in range(len(text)))))) == len(
        list(tokenize(CLEAN)))


def test_missing_terminators_do_not_grow_memory_without_bound() -> None:
    isa = CLEAN[:CLEAN.index("GS")]
    endless = (isa + "GS*IM" + "*X" * (1 << 20)).encode()
    chunks = (endless[i:i + 65536] for i in range(0, len(endless), 65536))
    with pytest.raises(X12SyntaxError, match="without a segment terminator") as err:
        list(tokenize(chunks))
    assert err.value.position == 2
