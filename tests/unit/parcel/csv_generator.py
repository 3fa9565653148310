"""Deterministic UPS and FedEx billing CSV files for the parser tests.

Only tests write carrier CSVs (the load tests send X12 210 files), so the CSV half of the
generator lives here. Like ``app.formats.generator.write_edi210``, each writer can plant bad
invoices and returns a ``GenerationReport`` of what it wrote, to compare a parse against.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from app.formats import csv_layouts as L
from app.formats.generator import GeneratedInvoice, GenerationReport

_ZERO = Decimal("0.00")
_UPS_CHARGES = (("FRT", "Ground"), ("FSC", "Fuel Surcharge"), ("ACC", "Residential Surcharge"),
                ("ACC", "Delivery Area Surcharge"), ("TAX", "Sales Tax"))
_FEDEX_CHARGES = ("Fuel Surcharge", "Residential Delivery Charge", "Delivery Area Surcharge",
                  "Additional Handling Surcharge", "Address Correction")
FEDEX_CHARGE_PAIRS = 25  # how many pairs the writer puts in the header; the parser takes any


def fedex_header(pairs: int = FEDEX_CHARGE_PAIRS) -> list[str]:
    """The header row the writer puts first: every known column, then the charge pairs."""
    header = list(L.FEDEX_COLUMNS.values())
    for _ in range(pairs):
        header += [L.FEDEX_CHARGE_DESCRIPTION, L.FEDEX_CHARGE_AMOUNT]
    return header


def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)).scaleb(-2)


@dataclass(frozen=True)
class CsvSpec:
    invoices: int = 5
    shipments_per_invoice: int = 4
    charges_per_shipment: int = 3  # UPS rows per tracking number, FedEx charges per row
    seed: int = 0
    bad_amount: frozenset[int] = frozenset()
    total_mismatch: frozenset[int] = frozenset()
    negative_charge: frozenset[int] = frozenset()
    credit_every: int = 0  # UPS: every Nth shipment gets an ADJ credit row; FedEx: a discount
    bom: bool = False
    crlf: bool = True


def _open_csv(target: str | Path | IO[str]) -> tuple[IO[str], Path | None, bool]:
    if isinstance(target, str | Path):
        path = Path(target)
        return path.open("w", encoding="utf-8", newline=""), path, True
    return target, None, False


def write_ups_csv(target: str | Path | IO[str], spec: CsvSpec) -> GenerationReport:
    """UPS billing data: no header, 250 columns, one row per charge."""
    out, path, close = _open_csv(target)
    try:
        if spec.bom:
            out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n" if spec.crlf else "\n")
        rng = random.Random(spec.seed)
        report = GenerationReport(path=path, format="ups_csv", invoices=[])
        for index in range(spec.invoices):
            report.invoices.append(_ups_invoice(writer, spec, rng, index))
        return report
    finally:
        if close:
            out.close()


def _ups_invoice(writer: Any, spec: CsvSpec, rng: random.Random, index: int
                 ) -> GeneratedInvoice:
    number = f"0000{spec.seed % 100:02d}{index + 1:06d}"
    account = f"{spec.seed % 1000:03d}A1B2"
    rows: list[dict[str, str]] = []
    total = _ZERO
    needs_review = 0
    for s in range(spec.shipments_per_invoice):
        tracking = f"1Z{spec.seed % 1000:03d}{index:05d}{s:06d}"
        kinds = [_UPS_CHARGES[(s + c) % len(_UPS_CHARGES)] for c in
                 range(spec.charges_per_shipment)]
        credit = bool(spec.credit_every) and (s + 1) % spec.credit_every == 0
        for c, (cls, desc) in enumerate(kinds):
            amount = _cents(rng, 50, 9000)
            if index in spec.negative_charge and s == 0 and c == 0:
                amount = -amount
                needs_review += 1
            rows.append(dict(tracking=tracking, cls=cls, desc=desc, cat="SHP",
                             amount=str(amount), incentive=str(-_cents(rng, 0, 500))))
            total += amount
        if credit:
            amount = -_cents(rng, 50, 500)
            rows.append(dict(tracking=tracking, cls="FRT", desc="Shipping Charge Correction",
                             cat="ADJ", amount=str(amount), incentive="0.00"))
            total += amount
    declared = total + Decimal("1.00") if index in spec.total_mismatch else total
    for r, data in enumerate(rows):
        row = [""] * L.UPS_COLUMN_COUNT

        def put(field: str, value: str, row: list[str] = row) -> None:
            row[L.UPS_COLUMNS[field] - 1] = value

        amount_text = data["amount"]
        if index in spec.bad_amount and r == 0:
            amount_text = "12.3O"
        put("version", "2.1")
        put("recipient_number", f"{spec.seed % 1000:03d}A1B2")
        put("account_number", account)
        put("account_country", "US")
        put("invoice_date", "2026-11-20")
        put("invoice_number", number)
        put("invoice_type_code", "E")
        put("invoice_currency_code", "USD")
        put("invoice_amount", str(declared))
        put("transaction_date", "2026-11-18")
        put("lead_shipment_number", data["tracking"])
        put("bill_option_code", "P/P")
        put("package_quantity", "1")
        put("tracking_number", data["tracking"])
        put("billed_weight", str(rng.randint(1, 70)))
        put("billed_weight_uom", "L")
        put("zone", f"{rng.randint(2, 8):03d}")
        put("charge_category_code", data["cat"])
        put("charge_classification_code", data["cls"])
        put("charge_description", data["desc"])
        put("transaction_currency_code", "USD")
        put("incentive_amount", data["incentive"])
        put("net_amount", amount_text)
        writer.writerow(row)
    expected = ("ParcelInvalidAmount" if index in spec.bad_amount else
                "ParcelTotalsMismatch" if index in spec.total_mismatch else None)
    return GeneratedInvoice(index=index, invoice_number=number,
                            groups=spec.shipments_per_invoice, charges=len(rows), total=total,
                            needs_review=needs_review, expected_error=expected)


def write_fedex_csv(target: str | Path | IO[str], spec: CsvSpec) -> GenerationReport:
    """FedEx billing: a header row, one row per shipment, charge description/amount pairs."""
    out, path, close = _open_csv(target)
    pairs = max(spec.charges_per_shipment, 1) + 1
    try:
        if spec.bom:
            out.write("\ufeff")
        writer = csv.writer(out, lineterminator="\r\n" if spec.crlf else "\n")
        writer.writerow(fedex_header(max(pairs, FEDEX_CHARGE_PAIRS)))
        width = len(L.FEDEX_COLUMNS)
        names = list(L.FEDEX_COLUMNS)
        rng = random.Random(spec.seed)
        report = GenerationReport(path=path, format="fedex_csv", invoices=[])
        for index in range(spec.invoices):
            number = f"7{spec.seed % 100:02d}{index + 1:06d}"
            shipments = []
            total = _ZERO
            needs_review = 0
            for s in range(spec.shipments_per_invoice):
                transport = _cents(rng, 500, 9000)
                charges: list[tuple[str, Decimal]] = []
                for c in range(spec.charges_per_shipment):
                    amount = _cents(rng, 50, 2000)
                    if index in spec.negative_charge and s == 0 and c == 0:
                        amount = -amount
                        needs_review += 1
                    charges.append((_FEDEX_CHARGES[(s + c) % len(_FEDEX_CHARGES)], amount))
                if spec.credit_every and (s + 1) % spec.credit_every == 0:
                    charges.append(("Earned Discount", -(transport / 5).quantize(
                        Decimal("0.01"))))
                net = transport + sum((a for _, a in charges), _ZERO)
                total += net
                shipments.append((s, transport, charges, net))
            declared = total + Decimal("1.00") if index in spec.total_mismatch else total
            for s, transport, charges, net in shipments:
                values = dict.fromkeys(names, "")
                values.update(
                    account_number=f"{spec.seed % 1000:04d}1234-5", invoice_date="11/20/2026",
                    invoice_number=number, original_amount_due=str(declared),
                    current_balance=str(declared), payor="Shipper",
                    tracking_id=f"7{spec.seed % 100:02d}{index:05d}{s:04d}",
                    transportation_charge=str(transport), net_charge=str(net),
                    service_type="FedEx Ground", ground_service="Ground",
                    shipment_date="11/18/2026", rated_weight=str(rng.randint(1, 70)),
                    rated_weight_units="L", pieces="1", zone=f"{rng.randint(2, 8):02d}",
                    currency="USD",
                )
                row = [values[n] for n in names]
                assert len(row) == width
                for c, (desc, amount) in enumerate(charges):
                    text = str(amount)
                    if index in spec.bad_amount and s == 0 and c == 0:
                        text = "n/a"
                    row += [desc, text]
                writer.writerow(row)
            expected = ("ParcelInvalidAmount" if index in spec.bad_amount else
                        "ParcelTotalsMismatch" if index in spec.total_mismatch else None)
            report.invoices.append(GeneratedInvoice(
                index=index, invoice_number=number, groups=spec.shipments_per_invoice,
                charges=sum(1 + len(c) for _, _, c, _ in shipments), total=total,
                needs_review=needs_review, expected_error=expected,
            ))
        return report
    finally:
        if close:
            out.close()
