"""Hostile and malformed carrier files: every row is accounted for, every bad value is a typed
input error naming where it is, and nothing a parser accepts is refused by the database."""

from __future__ import annotations

import contextlib
import csv
import io
import re
import tracemalloc
from collections.abc import Iterator
from decimal import Decimal

import pytest
from csv_generator import CsvSpec, write_fedex_csv, write_ups_csv
from parcel_helpers import interchange, invoice_body, iter_edi210_invoices, transaction_set

from app.formats import csv_layouts as L
from app.formats.csv_parse import LongLine, csv_parser, iter_lines
from app.formats.files import parse_file
from app.formats.invoice import (
    MAX_AMOUNT,
    Invoice,
    InvoiceFailure,
    InvoiceResult,
    ParcelInputError,
    ParseLimits,
    collect_invoices,
)
from app.formats.x12 import X12Error

MIB = 1 << 20


def _fedex(invoices: int = 5) -> tuple[list[str], list[str], int]:
    """(lines, header cells, index of the invoice number column) of a generated FedEx file."""
    out = io.StringIO()
    write_fedex_csv(out, CsvSpec(invoices=invoices))
    lines = [line for line in out.getvalue().split("\r\n") if line]
    header = next(csv.reader([lines[0]]))
    return lines, header, header.index(L.FEDEX_COLUMNS["invoice_number"])


def _rows_of(lines: list[str], column: int, number: str) -> list[int]:
    """0-based line indexes of the rows of invoice ``number``."""
    return [i for i, line in enumerate(lines[1:], start=1)
            if next(csv.reader([line]))[column] == number]


def _parse_csv(text: str, carrier: str, limits: ParseLimits | None = None
               ) -> tuple[list[InvoiceResult], object]:
    parser = csv_parser(text, carrier, limits)
    return list(collect_invoices(parser.events())), parser.counts


def test_an_unclosed_quote_refuses_its_row_and_swallows_nothing() -> None:
    lines, header, column = _fedex()
    numbers = list(dict.fromkeys(next(csv.reader([x]))[column] for x in lines[1:]))
    victim = _rows_of(lines, column, numbers[1])
    description = header.index(L.FEDEX_CHARGE_DESCRIPTION)
    cells = next(csv.reader([lines[victim[1]]]))
    cells[description] = '"' + cells[description]  # written raw: the quote is never closed
    lines[victim[1]] = ",".join(cells)
    results, counts = _parse_csv("\r\n".join(lines) + "\r\n", "fedex")
    assert [r.summary.invoice_number for r in results if isinstance(r, Invoice)] == [
        numbers[0], *numbers[2:]]
    [failure] = [r for r in results if isinstance(r, InvoiceFailure)]
    assert failure.invoice_number == numbers[1] and failure.position == victim[1] + 1
    assert "quote left open" in failure.message and len(failure.message) < 400
    assert counts.read == len(lines) - 1 == counts.in_invoices + counts.refused
    assert counts.refused == len(victim)


def test_ups_rows_are_all_accounted_for() -> None:
    out = io.StringIO()
    write_ups_csv(out, CsvSpec(invoices=4, bad_amount=frozenset({1}),
                               total_mismatch=frozenset({2})))
    lines = [line for line in out.getvalue().split("\r\n") if line]
    lines.insert(3, "x,y")  # a short row inside the first invoice
    results, counts = _parse_csv("\r\n".join(lines), "ups")
    assert sum(isinstance(r, Invoice) for r in results) == 1
    assert counts.read == len(lines) == counts.in_invoices + counts.refused
    first = results[0]
    assert isinstance(first, InvoiceFailure) and "row 4" in first.message
    assert "it has 2 columns" in first.message


def test_a_short_fedex_row_is_refused_not_padded() -> None:
    lines, header, column = _fedex(2)
    cut = header.index(L.FEDEX_COLUMNS["service_type"])
    cells = next(csv.reader([lines[1]]))
    lines[1] = ",".join(cells[:cut])  # every charge column is there, the rest is cut off
    results, counts = _parse_csv("\r\n".join(lines), "fedex")
    failure = results[0]
    assert isinstance(failure, InvoiceFailure) and failure.position == 2
    assert f"it has {cut} columns" in failure.message
    assert isinstance(results[1], Invoice)
    assert counts.read == counts.in_invoices + counts.refused


@pytest.mark.parametrize("separator", ["\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028",
                                       "\u2029", "\x0b"])
def test_only_cr_and_lf_end_a_line(separator: str) -> None:
    assert list(iter_lines(f"a,b{separator}c,d\r\ne\rf\ng")) == [
        f"a,b{separator}c,d", "e", "f", "g"]


def test_a_control_character_refuses_its_row_instead_of_splitting_it() -> None:
    lines, header, column = _fedex(3)
    cells = next(csv.reader([lines[1]]))
    tracking = header.index(L.FEDEX_COLUMNS["tracking_id"])
    cells[tracking] = cells[tracking] + "\x1c" + cells[tracking]
    lines[1] = ",".join(cells)
    results, counts = _parse_csv("\r\n".join(lines), "fedex")
    assert len(results) == 3  # no phantom invoice
    failure = results[0]
    assert isinstance(failure, InvoiceFailure) and "control character '\\x1c'" in \
        failure.message
    assert counts.read == len(lines) - 1 == counts.in_invoices + counts.refused


def test_a_crlf_split_between_chunks_is_one_line_end() -> None:
    assert list(iter_lines(iter(["a,b\r", "\nc,d\r", "\r\ne"]))) == ["a,b", "c,d", "", "e"]


def test_an_endless_line_is_refused_in_bounded_memory() -> None:
    def chunks() -> Iterator[str]:
        yield "first,line\r\n"
        for _ in range(256):  # 16 MiB without a line break
            yield "x" * (1 << 16)
        yield "\r\nlast,line"

    tracemalloc.start()
    try:
        lines = list(iter_lines(chunks(), max_line=MIB))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == ["first,line", LongLine(16 * MIB), "last,line"]
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"


@pytest.mark.parametrize("row", [1, 2])
def test_an_over_long_row_fails_its_invoice_with_the_limit_named(row: int) -> None:
    lines, header, column = _fedex(2)
    lines[row] += "," + "y" * 5000
    results, _ = _parse_csv("\r\n".join(lines), "fedex", ParseLimits(max_line=4096))
    failure = results[0]
    assert isinstance(failure, InvoiceFailure) and "HAUL_PARCEL_MAX_LINE" in failure.message
    assert isinstance(results[1], Invoice)


# --------------------------------------------------------------------------------------------
# values the database would refuse, and counts that are not numbers
# --------------------------------------------------------------------------------------------


def _edi(body: list[str], **envelope: object) -> str:
    return interchange([[transaction_set(body), transaction_set(invoice_body("OK2"), "0002")]],
                       **envelope)  # type: ignore[arg-type]


_L1 = "L1*1*10.00*FR*{}****400****LINEHAUL"


@pytest.mark.parametrize(("body", "error_type", "words"), [
    (invoice_body(b307="1" * 5000), "ParcelInvalidAmount", "out of range"),
    (invoice_body(b307="100000000000000", l305=None,
                  lines=["LX*1", _L1.format("100000000000000")]), "ParcelInvalidAmount",
     "out of range"),
    (invoice_body(b307="²"), "ParcelInvalidAmount", "not a number"),
    (invoice_body(extra_header=["C3*DOLLARSUS"]), "ParcelInvoiceStructure",
     "not a currency code"),
    (invoice_body(extra_header=["N9*BM*BOL\x0077"]), "ParcelInvoiceStructure",
     "control character '\\x00'"),
    (invoice_body(b307="1", l305=None, lines=[
        "LX*1", *[_L1.format("99999999999999")] * 101]), "ParcelInvalidAmount", "beyond"),
])
def test_edi_values_the_database_refuses_fail_their_invoice(
    body: list[str], error_type: str, words: str
) -> None:
    failure, ok = iter_edi210_invoices(_edi(body))
    assert isinstance(failure, InvoiceFailure), failure
    assert failure.error_type == error_type and words in failure.message
    assert failure.segment and failure.position
    assert isinstance(ok, Invoice)


@pytest.mark.parametrize("count", ["²", "9" * 5000, "٣"])
def test_a_count_that_is_no_number_is_an_envelope_error(count: str) -> None:
    text = interchange([[transaction_set(invoice_body(), se_count=None)]], iea_count=None)
    text = text.replace("GE*1*1", f"GE*{count}*1")
    with pytest.raises(X12Error, match="GE01 says"):
        list(iter_edi210_invoices(text))
    text = re.sub(r"SE\*\d+\*", f"SE*{count}*", interchange([[transaction_set(invoice_body())]]))
    with pytest.raises(X12Error, match="SE01 says"):
        list(iter_edi210_invoices(text))


def test_a_control_character_in_the_envelope_is_a_file_error() -> None:
    text = _edi(invoice_body()).replace("GS*IM*SENDER", "GS*IM*SEN\x00DER")
    with pytest.raises(X12Error, match="control character") as err:
        list(iter_edi210_invoices(text))
    assert err.value.segment == "GS"


@pytest.mark.parametrize(("amount", "words"), [
    ("1E+1000000", "out of range"), ("1e12", "out of range"), ("10.005", "than a cent"),
    ("NaN", "not a number"), ("1" * 5000, "out of range"),
])
def test_csv_amounts_the_database_refuses_fail_their_invoice(amount: str, words: str) -> None:
    lines, header, column = _fedex(2)
    cells = next(csv.reader([lines[1]]))
    cells[header.index(L.FEDEX_COLUMNS["net_charge"])] = amount
    lines[1] = ",".join(cells)
    results, _ = _parse_csv("\r\n".join(lines), "fedex")
    failure = results[0]
    assert isinstance(failure, InvoiceFailure) and failure.error_type == "ParcelInvalidAmount"
    assert words in failure.message and failure.position == 2
    assert isinstance(results[1], Invoice)


def test_a_csv_currency_of_nine_letters_fails_its_invoice() -> None:
    lines, header, column = _fedex(2)
    cells = next(csv.reader([lines[1]]))
    cells[header.index(L.FEDEX_COLUMNS["currency"])] = "USDOLLARS"
    lines[1] = ",".join(cells)
    results, _ = _parse_csv("\r\n".join(lines), "fedex")
    assert isinstance(results[0], InvoiceFailure)
    assert "not a currency code" in results[0].message and isinstance(results[1], Invoice)


def test_informational_numbers_too_large_for_the_database_are_dropped() -> None:
    body = invoice_body(lines=["LX*1", "L0*1***1E+1000000*G***2*PCS",
                               "L1*1*99999999999999*FR*10000****400****LINEHAUL",
                               "LX*2", "L1*2***5000****FUE****FUEL"])
    invoice, _ = iter_edi210_invoices(_edi(body))
    assert isinstance(invoice, Invoice)
    assert invoice.charge_groups[0].weight is None
    assert invoice.charge_groups[0].charges[0].rate is None


# --------------------------------------------------------------------------------------------
# caps on what one group or invoice may hold
# --------------------------------------------------------------------------------------------


def test_a_group_over_the_charge_cap_fails_its_invoice_only() -> None:
    lines = ["LX*1", *[_L1.format("1")] * 11]
    body = invoice_body(b307="11", l305=None, lines=lines)
    failure, ok = collect_invoices(parse_file(_edi(body).encode(),
                                              limits=ParseLimits(max_charges_per_group=10)))
    assert isinstance(failure, InvoiceFailure) and failure.segment == "L1"
    assert "more than 10 L1 charges" in failure.message
    assert "HAUL_PARCEL_MAX_CHARGES_PER_GROUP" in failure.message
    assert isinstance(ok, Invoice)


def test_an_invoice_over_the_segment_cap_fails_alone() -> None:
    body = invoice_body(b307="11", l305=None, lines=["LX*1", *[_L1.format("1")] * 11])
    limits = ParseLimits(max_rows_per_invoice=len(invoice_body()) + 2)
    failure, ok = collect_invoices(parse_file(_edi(body).encode(), limits=limits))
    assert isinstance(failure, InvoiceFailure) and "HAUL_PARCEL_MAX_ROWS_PER_INVOICE" in \
        failure.message
    assert isinstance(ok, Invoice)


def test_a_csv_invoice_over_the_row_cap_fails_alone() -> None:
    lines, _, column = _fedex(2)
    first = _rows_of(lines, column, next(csv.reader([lines[1]]))[column])
    results, counts = _parse_csv("\r\n".join(lines), "fedex",
                                 ParseLimits(max_rows_per_invoice=len(first) - 1))
    assert isinstance(results[0], InvoiceFailure) and "rows" in results[0].message
    assert counts.read == counts.in_invoices + counts.refused


def test_whatever_a_parser_accepts_fits_the_database() -> None:
    """Every amount of an accepted invoice fits numeric(14, 2), in whole cents."""
    body = invoice_body(b307="99999999999999", l305=None,
                        lines=["LX*1", _L1.format("99999999999999")])
    invoice, _ = iter_edi210_invoices(_edi(body))
    assert isinstance(invoice, Invoice)
    for charge in invoice.charge_groups[0].charges:
        assert abs(charge.amount) < MAX_AMOUNT
        assert charge.amount == charge.amount.quantize(Decimal("0.01"))


def test_parse_errors_are_all_input_errors() -> None:
    """A grab bag of hostile files: each one parses or fails with a typed input error."""
    files = [
        _edi(invoice_body()).replace("ISA*00", "ISA*\x0000"),
        _edi(invoice_body()).replace("*00401*", "*²²²²²*"),
        _edi(invoice_body(extra_header=["G62*86*²²²²²²²²"])),
        _edi(invoice_body(lines=["LX*²", "L0*²*²*²*²*²*²*²*²", _L1.format("²")])),
    ]
    for text in files:
        with contextlib.suppress(ParcelInputError):
            list(collect_invoices(parse_file(text.encode())))
