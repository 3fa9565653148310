"""210 mapping: fields, purposes, negative-amount rules, totals, and per-invoice failure."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from parcel_helpers import interchange, invoice_body, iter_edi210_invoices, transaction_set

from app.formats.edi210 import Edi210Parser
from app.formats.invoice import (
    ChargeGroupParsed,
    Invoice,
    InvoiceFailed,
    InvoiceFailure,
    InvoiceFinished,
    InvoiceKey,
    InvoiceStarted,
    Purpose,
    collect_invoices,
)
from app.formats.x12 import X12EnvelopeError


def _one(body: list[str]) -> Invoice | InvoiceFailure:
    results = list(iter_edi210_invoices(interchange([[transaction_set(body)]])))
    assert len(results) == 1
    return results[0]


def _ok(body: list[str]) -> Invoice:
    result = _one(body)
    assert isinstance(result, Invoice), result
    return result


def test_header_fields_are_mapped() -> None:
    inv = _ok(invoice_body(number="INV-7"))
    h = inv.header
    assert (h.invoice_number, h.shipment_id, h.payment_method) == ("INV-7", "SHIP9", "PP")
    assert h.invoice_date == dt.date(2026, 11, 20)
    assert h.scac == "ABCD" and h.account == "ACCT42" and h.currency == "CAD"
    assert h.net_amount_due == Decimal("150.00")
    assert h.purpose is Purpose.ORIGINAL
    assert [(r.qualifier, r.value) for r in h.references] == [("BM", "BOL77")]
    assert h.delivery_date == dt.date(2026, 11, 22)
    assert [(d.qualifier, d.date) for d in h.dates] == [
        ("035", dt.date(2026, 11, 22)), ("B312", dt.date(2026, 11, 20)),
        ("86", dt.date(2026, 11, 20))]
    bill_to = h.parties[0]
    assert (bill_to.role, bill_to.name, bill_to.id_code, bill_to.city, bill_to.postal_code) == (
        "BT", "BILL TO CO", "ACCT42", "DAYTON", "45402")
    assert h.control is not None and h.control.transaction_set == "0001"
    assert h.key == InvoiceKey(scac="ABCD", account="ACCT42", invoice_number="INV-7",
                               invoice_date=dt.date(2026, 11, 20))


def test_charge_groups_and_charges() -> None:
    inv = _ok(invoice_body())
    assert [g.sequence for g in inv.charge_groups] == [1, 2]
    first = inv.charge_groups[0]
    assert (first.description, first.weight, first.weight_unit, first.quantity) == (
        "BOXES", Decimal("120"), "", Decimal("2"))
    charge = first.charges[0]
    assert (charge.line_number, charge.code, charge.description, charge.amount, charge.rate) == (
        "1", "400", "LINEHAUL", Decimal("100.00"), Decimal("10.00"))
    assert inv.summary.charge_count == 2 and inv.summary.charges_total == Decimal("150.00")
    assert inv.summary.declared_total == Decimal("150.00")


def test_currency_defaults_to_usd() -> None:
    body = [s for s in invoice_body() if not s.startswith("C3")]
    assert _ok(body).header.currency == "USD"


@pytest.mark.parametrize("code,purpose", [("00", Purpose.ORIGINAL), ("04", Purpose.CHANGE),
                                          ("05", Purpose.CHANGE), ("01", Purpose.CANCEL)])
def test_b2a_purpose(code: str, purpose: Purpose) -> None:
    inv = _ok(invoice_body(extra_header=[f"B2A*{code}"]))
    assert inv.header.purpose is purpose and inv.header.purpose_code == code


def test_unknown_b2a_purpose_fails_the_invoice() -> None:
    result = _one(invoice_body(extra_header=["B2A*99"]))
    assert isinstance(result, InvoiceFailure)
    assert result.error_type == "ParcelInvoiceStructure" and "B2A01 '99'" in result.message


def test_discount_may_be_negative() -> None:
    lines = ["LX*1", "L1*1***20000****400", "L1*1***-5000****DSC****DISCOUNT"]
    inv = _ok(invoice_body(lines=lines))
    discount = inv.charge_groups[0].charges[1]
    assert discount.amount == Decimal("-50.00") and discount.is_credit
    assert not discount.needs_review and inv.summary.needs_review_count == 0


def test_negative_non_credit_charge_is_flagged_not_rejected() -> None:
    lines = ["LX*1", "L1*1***20000****400", "L1*1***-5000****FUE****FUEL"]
    inv = _ok(invoice_body(lines=lines))
    fuel = inv.charge_groups[0].charges[1]
    assert fuel.needs_review and "FUE" in fuel.review_reason and "negative" in fuel.review_reason
    assert inv.summary.needs_review_count == 1


@pytest.mark.parametrize("bad", ["12A00", "1.5", "--100", "1 00"])
def test_non_numeric_amount_names_segment_and_position(bad: str) -> None:
    lines = ["LX*1", f"L1*1***{bad}****400"]
    result = _one(invoice_body(lines=lines, l305=None))
    assert isinstance(result, InvoiceFailure)
    assert result.error_type == "ParcelInvalidAmount" and result.segment == "L1"
    assert result.position == 13  # ISA GS ST B3 C3 N9 G62 N1 N3 N4 N1 LX L1
    assert result.position is not None
    assert "L104" in result.message and f"segment {result.position}" in result.message
    assert result.invoice_number == "INV1"


def test_non_numeric_b307() -> None:
    result = _one(invoice_body(b307="ABC"))
    assert isinstance(result, InvoiceFailure)
    assert result.error_type == "ParcelInvalidAmount" and "B307" in result.message


def test_b307_mismatch_names_the_invoice() -> None:
    result = _one(invoice_body(number="INV-9", b307="15001", l305="15000"))
    assert isinstance(result, InvoiceFailure)
    assert result.error_type == "ParcelTotalsMismatch"
    assert "INV-9" in result.message and "150.01" in result.message and "150.00" in result.message


def test_l305_mismatch() -> None:
    result = _one(invoice_body(l305="14000"))
    assert isinstance(result, InvoiceFailure)
    assert result.error_type == "ParcelTotalsMismatch" and "L305" in result.message


def test_l3_is_optional_and_b307_is_still_checked() -> None:
    inv = _ok(invoice_body(l305=None))
    assert inv.summary.declared_total is None
    result = _one(invoice_body(l305=None, b307="1"))
    assert isinstance(result, InvoiceFailure) and result.error_type == "ParcelTotalsMismatch"


def test_empty_l104_is_a_zero_charge() -> None:
    inv = _ok(invoice_body(lines=["LX*1", "L1*1***15000****400", "L1*1*2.5*PH"]))
    assert [c.amount for c in inv.charge_groups[0].charges] == [Decimal("150.00"), Decimal("0")]


def test_missing_b3_and_l1_outside_lx() -> None:
    result = _one(["C3*USD", "LX*1", "L1*1***100"])
    assert isinstance(result, InvoiceFailure) and "no B3" in result.message
    body = invoice_body(lines=["L1*1***15000"])
    result = _one(body)
    assert isinstance(result, InvoiceFailure) and "outside an LX loop" in result.message


def test_a_bad_invoice_does_not_stop_the_others() -> None:
    good1 = transaction_set(invoice_body(number="A"), control="0001")
    bad = transaction_set(invoice_body(number="B", lines=["LX*1", "L1*1***1X****400"],
                                       l305=None), control="0002")
    good2 = transaction_set(invoice_body(number="C"), control="0003")
    other = transaction_set(["BEG*00"], control="0004", code="810")
    results = list(iter_edi210_invoices(interchange([[good1, bad], [good2, other]])))
    assert [type(r).__name__ for r in results] == ["Invoice", "InvoiceFailure", "Invoice",
                                                  "InvoiceFailure"]
    assert [r.header.index if isinstance(r, Invoice) else r.index for r in results] == [
        0, 1, 2, 3]
    failure = results[1]
    assert isinstance(failure, InvoiceFailure) and failure.invoice_number == "B"
    assert isinstance(results[3], InvoiceFailure) and "not a 210" in results[3].message


def test_event_order_and_partial_groups_before_a_failure() -> None:
    body = invoice_body(lines=["LX*1", "L1*1***15000****400", "LX*2", "L1*2***x****400"],
                        l305=None)
    events = list(Edi210Parser(interchange([[transaction_set(body)]])).events())
    assert [type(e) for e in events] == [InvoiceStarted, ChargeGroupParsed, InvoiceFailed]
    body = invoice_body()
    events = list(Edi210Parser(interchange([[transaction_set(body)]])).events())
    assert [type(e) for e in events] == [InvoiceStarted, ChargeGroupParsed, ChargeGroupParsed,
                                        InvoiceFinished]


def test_envelope_error_is_file_level() -> None:
    body = invoice_body()
    text = interchange([[transaction_set(body, se_count=2)]])
    with pytest.raises(X12EnvelopeError):
        list(iter_edi210_invoices(text))
    parser = Edi210Parser(text, strict_envelope=False)
    assert all(isinstance(r, Invoice) for r in collect_invoices(parser.events()))
    assert [i.segment for i in parser.reader.issues] == ["SE"]
