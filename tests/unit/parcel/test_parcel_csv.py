"""Carrier CSV layouts and parsing, format detection, and the file-level errors."""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import pytest
from csv_generator import CsvSpec, fedex_header, write_fedex_csv, write_ups_csv
from parcel_helpers import iter_csv_invoices, iter_file_invoices

from app.formats import csv_layouts as L
from app.formats.csv_parse import iter_csv_events
from app.formats.detect import FileFormat, detect_format
from app.formats.invoice import (
    CsvFormatError,
    EmptyFileError,
    Invoice,
    InvoiceFailure,
    UnknownCarrierError,
    UnrecognizedFormatError,
)


def _ups_row(**fields: str) -> list[str]:
    row = [""] * L.UPS_COLUMN_COUNT
    base = dict(account_number="A1", invoice_number="INV1", invoice_date="2026-11-20",
                invoice_amount="10.00", tracking_number="1Z1", charge_classification_code="FRT",
                charge_category_code="SHP", charge_description="Ground", net_amount="10.00",
                invoice_currency_code="USD")
    base.update(fields)
    for name, value in base.items():
        row[L.UPS_COLUMNS[name] - 1] = value
    return row


def _csv(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue()


def test_layout_table_is_consistent() -> None:
    positions = list(L.UPS_COLUMNS.values())
    assert len(set(positions)) == len(positions)
    assert all(1 <= p <= L.UPS_COLUMN_COUNT for p in positions)
    assert L.UPS_COLUMNS["tracking_number"] == 21 and L.UPS_COLUMNS["invoice_number"] == 6
    assert set(L.FEDEX_REQUIRED) <= set(L.FEDEX_COLUMNS)
    header = fedex_header(3)
    assert header[-6:] == [L.FEDEX_CHARGE_DESCRIPTION, L.FEDEX_CHARGE_AMOUNT] * 3


def test_ups_rows_group_into_invoices_and_tracking_numbers() -> None:
    rows = [
        _ups_row(invoice_amount="17.50", net_amount="10.00", incentive_amount="-2.00"),
        _ups_row(invoice_amount="17.50", charge_classification_code="FSC", net_amount="1.50"),
        _ups_row(invoice_amount="17.50", tracking_number="1Z2", net_amount="6.00"),
        _ups_row(invoice_number="INV2", invoice_amount="3.00", net_amount="3.00"),
    ]
    results = list(iter_csv_invoices(_csv(rows), "ups"))
    assert all(isinstance(r, Invoice) for r in results)
    first, second = results
    assert isinstance(first, Invoice) and isinstance(second, Invoice)
    assert first.header.scac == "UPSN" and first.header.account == "A1"
    assert [g.key for g in first.charge_groups] == ["1Z1", "1Z2"]
    assert [len(g.charges) for g in first.charge_groups] == [2, 1]
    assert first.charge_groups[0].charges[0].incentive_amount == Decimal("-2.00")
    assert first.summary.charges_total == Decimal("17.50") == first.header.net_amount_due
    assert second.summary.charge_count == 1


def test_ups_negative_amount_rules() -> None:
    rows = [
        _ups_row(invoice_amount="5.00", net_amount="10.00"),
        _ups_row(invoice_amount="5.00", charge_category_code="ADJ", net_amount="-3.00"),
        _ups_row(invoice_amount="5.00", charge_classification_code="ACC", net_amount="-2.00"),
    ]
    [inv] = iter_csv_invoices(_csv(rows), "ups")
    assert isinstance(inv, Invoice)
    charges = inv.charge_groups[0].charges
    assert [(c.is_credit, c.needs_review) for c in charges] == [
        (False, False), (True, False), (False, True)]
    assert "negative" in charges[2].review_reason


def test_ups_unknown_classification_is_flagged() -> None:
    [inv] = iter_csv_invoices(_csv([_ups_row(charge_classification_code="ZZZ")]), "ups")
    assert isinstance(inv, Invoice)
    charge = inv.charge_groups[0].charges[0]
    assert charge.needs_review and "ZZZ" in charge.review_reason


def test_ups_bad_amount_fails_only_its_invoice() -> None:
    rows = [_ups_row(net_amount="ten"), _ups_row(net_amount="0.00"),
            _ups_row(invoice_number="INV2", invoice_amount="1.00", net_amount="1.00")]
    results = list(iter_csv_invoices(_csv(rows), "ups"))
    assert [type(r) for r in results] == [InvoiceFailure, Invoice]
    failure = results[0]
    assert isinstance(failure, InvoiceFailure)
    assert failure.error_type == "ParcelInvalidAmount" and failure.position == 1
    assert "column 53" in failure.message and "'ten'" in failure.message


def test_ups_invoice_total_mismatch() -> None:
    [result] = iter_csv_invoices(_csv([_ups_row(invoice_amount="11.00")]), "ups")
    assert isinstance(result, InvoiceFailure) and result.error_type == "ParcelTotalsMismatch"
    assert "INV1" in result.message


def test_ups_interleaved_invoices_are_rejected() -> None:
    rows = [_ups_row(), _ups_row(invoice_number="INV2"), _ups_row()]
    with pytest.raises(CsvFormatError, match="rows of one invoice must be together") as err:
        list(iter_csv_events(_csv(rows), "ups"))
    assert err.value.row == 3


def test_a_file_of_only_short_rows_is_a_file_error() -> None:
    with pytest.raises(CsvFormatError, match="row 1 was refused: it has 3 columns"):
        list(iter_csv_events("a,b,c\r\n", "ups"))


def test_fedex_rows_with_charge_pairs() -> None:
    header = fedex_header(3)
    fields = list(L.FEDEX_COLUMNS)

    def row(number: str, tracking: str, transport: str, net: str, due: str,
            *pairs: str) -> list[str]:
        values = dict.fromkeys(fields, "")
        values.update(account_number="F1", invoice_date="11/20/2026", invoice_number=number,
                      original_amount_due=due, tracking_id=tracking,
                      transportation_charge=transport, net_charge=net)
        return [values[f] for f in fields] + list(pairs)

    rows = [header,
            row("9", "T1", "20.00", "21.50", "30.00", "Fuel Surcharge", "2.50",
                "Earned Discount", "-1.00"),
            row("9", "T2", "8.00", "8.50", "30.00", "Residential Delivery Charge", "0.50")]
    [inv] = iter_csv_invoices(_csv(rows), "fedex")
    assert isinstance(inv, Invoice)
    assert [g.key for g in inv.charge_groups] == ["T1", "T2"]
    codes = [(c.code, c.amount, c.is_credit) for c in inv.charge_groups[0].charges]
    assert codes == [("FRT", Decimal("20.00"), False), ("FSC", Decimal("2.50"), False),
                     ("DSC", Decimal("-1.00"), True)]
    assert inv.summary.charges_total == Decimal("30.00")
    assert inv.header.invoice_date is not None and inv.header.invoice_date.day == 20

    rows[2] = row("9", "T2", "8.00", "9.50", "30.00", "Residential Delivery Charge", "0.50")
    [failure] = iter_csv_invoices(_csv(rows), "fedex")
    assert isinstance(failure, InvoiceFailure) and failure.error_type == "ParcelTotalsMismatch"
    assert failure.position == 3 and "'T2'" in failure.message and "9.50" in failure.message


def test_fedex_missing_columns() -> None:
    with pytest.raises(CsvFormatError, match="lacks 'Express or Ground Tracking ID'"):
        list(iter_csv_events("Bill to Account Number,Invoice Date,Invoice Number,"
                             "Transportation Charge Amount,Net Charge Amount\r\n", "fedex"))


def test_unknown_carrier_code() -> None:
    with pytest.raises(UnknownCarrierError, match="unknown carrier code 'DHLX'") as err:
        list(iter_csv_events("", "DHLX"))
    assert err.value.error_type == "ParcelUnknownCarrier"
    assert L.resolve_carrier("upsn").name == "ups" and L.resolve_carrier("FDEG").name == "fedex"
    with pytest.raises(UnknownCarrierError):
        detect_format(b"ISA*00*", carrier="nope")


def test_empty_csv() -> None:
    with pytest.raises(EmptyFileError):
        list(iter_csv_events("\r\n\r\n", "ups"))


def test_detect_formats() -> None:
    ups, fedex = io.StringIO(), io.StringIO()
    write_ups_csv(ups, CsvSpec(invoices=1))
    write_fedex_csv(fedex, CsvSpec(invoices=1, bom=True))
    assert detect_format(ups.getvalue()) is FileFormat.UPS_CSV
    assert detect_format(fedex.getvalue().encode()) is FileFormat.FEDEX_CSV
    assert detect_format(b"\xef\xbb\xbf  ISA*00") is FileFormat.EDI_X12
    with pytest.raises(UnrecognizedFormatError, match="check the --carrier option"):
        detect_format(ups.getvalue(), carrier="fedex")


@pytest.mark.parametrize("data,error", [
    (b"", EmptyFileError),
    (b"  \r\n", EmptyFileError),
    (b'{"data": "ISA"}', UnrecognizedFormatError),
    (b"%PDF-1.7\n", UnrecognizedFormatError),
    (b"name,amount\nx,1\n", UnrecognizedFormatError),
    (b"hello world", UnrecognizedFormatError),
])
def test_neither_edi_nor_csv(data: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        list(iter_file_invoices(data))


def test_iter_file_invoices_reads_each_format(tmp_path: object) -> None:
    from pathlib import Path

    folder = Path(str(tmp_path))
    reports = [
        write_ups_csv(folder / "u.csv", CsvSpec(invoices=3, seed=3)),
        write_fedex_csv(folder / "f.csv", CsvSpec(invoices=2, seed=4, crlf=False)),
    ]
    for report in reports:
        assert report.path is not None
        results = list(iter_file_invoices(report.path))
        assert len(results) == len(report.invoices)
        assert sum(r.summary.charges_total for r in results if isinstance(r, Invoice)) == \
            report.total


def test_error_types_are_stable_and_distinct() -> None:
    from app.formats.files import NON_RETRYABLE_ERROR_TYPES

    assert len(set(NON_RETRYABLE_ERROR_TYPES)) == len(NON_RETRYABLE_ERROR_TYPES) == 12
    assert {"X12Envelope", "ParcelInvalidAmount", "ParcelTotalsMismatch", "ParcelEmptyFile",
            "ParcelUnknownCarrier", "ParcelUnrecognizedFormat", "X12NotEdi"} <= set(
        NON_RETRYABLE_ERROR_TYPES)


def test_an_unreadable_row_fails_the_invoice_it_sits_in() -> None:
    text = _csv([_ups_row()]) + '"' + "x" * (1 << 18)
    [failure] = iter_csv_invoices(text, "ups")
    assert isinstance(failure, InvoiceFailure) and failure.error_type == "ParcelInvoiceStructure"
    assert failure.position == 2 and "cannot be read as CSV" in failure.message
