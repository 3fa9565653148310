"""Carrier CSV layouts: every column position and header name in one table.

Carriers change their billing files between versions; when they do, this is the only module to
edit. Two layouts are known:

- UPS Billing Data: no header row, 250 positional columns, one row per charge. Positions are the
  1-based column numbers of UPS's billing data dictionary (columns 1-30 as published; 31-53 as
  we read the same dictionary). Check them against the dictionary of the file version in
  column 1 when UPS announces a new version.
- FedEx billing (FedEx Billing Online download): a header row, one row per shipment, and repeating
  pairs of "Tracking ID Charge Description" / "Tracking ID Charge Amount" columns.

It also holds the carriers haul knows, so an unknown carrier code fails with one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.formats.invoice import UnknownCarrierError

# --------------------------------------------------------------------------------------------
# carriers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CarrierInfo:
    name: str  # our name: "ups", "fedex"
    scac: str  # the SCAC used in natural keys for CSV invoices
    csv_layout: str | None  # "ups", "fedex", or None when the carrier sends EDI only
    aliases: tuple[str, ...] = ()


CARRIERS: dict[str, CarrierInfo] = {
    "ups": CarrierInfo("ups", "UPSN", "ups", ("UPSN", "UPS")),
    "fedex": CarrierInfo("fedex", "FDEN", "fedex", ("FDEN", "FDEG", "FDX", "FEDEX")),
    "usps": CarrierInfo("usps", "USPS", None, ("USPS",)),
}


def resolve_carrier(code: str) -> CarrierInfo:
    """Our carrier for a name or SCAC, case-insensitive; ``UnknownCarrierError`` otherwise."""
    wanted = code.strip().upper()
    for info in CARRIERS.values():
        if wanted == info.name.upper() or wanted in info.aliases:
            return info
    known = ", ".join(sorted(CARRIERS))
    raise UnknownCarrierError(
        f"unknown carrier code {code!r}; haul knows {known} (or their SCACs); add the carrier "
        "to app/formats/csv_layouts.py before ingesting its files"
    )


# --------------------------------------------------------------------------------------------
# UPS billing data (no header, positional)
# --------------------------------------------------------------------------------------------

UPS_COLUMN_COUNT = 250

# field -> 1-based column number
UPS_COLUMNS: dict[str, int] = {
    "version": 1,
    "recipient_number": 2,
    "account_number": 3,
    "account_country": 4,
    "invoice_date": 5,
    "invoice_number": 6,
    "invoice_type_code": 7,
    "invoice_type_detail_code": 8,
    "account_tax_id": 9,
    "invoice_currency_code": 10,
    "invoice_amount": 11,
    "transaction_date": 12,
    "pickup_record_number": 13,
    "lead_shipment_number": 14,
    "world_ease_number": 15,
    "shipment_reference_1": 16,
    "shipment_reference_2": 17,
    "bill_option_code": 18,
    "package_quantity": 19,
    "oversize_quantity": 20,
    "tracking_number": 21,
    "package_reference_1": 22,
    "package_reference_2": 23,
    "package_reference_3": 24,
    "package_reference_4": 25,
    "package_reference_5": 26,
    "entered_weight": 27,
    "entered_weight_uom": 28,
    "billed_weight": 29,
    "billed_weight_uom": 30,
    "container_type": 31,
    "billed_weight_type": 32,
    "package_dimensions": 33,
    "zone": 34,
    "charge_category_code": 35,
    "charge_category_detail_code": 36,
    "charge_source": 37,
    "type_code_1": 38,
    "type_detail_code_1": 39,
    "type_detail_value_1": 40,
    "type_code_2": 41,
    "type_detail_code_2": 42,
    "type_detail_value_2": 43,
    "charge_classification_code": 44,
    "charge_description_code": 45,
    "charge_description": 46,
    "charged_unit_quantity": 47,
    "basis_currency_code": 48,
    "basis_value": 49,
    "tax_indicator": 50,
    "transaction_currency_code": 51,
    "incentive_amount": 52,
    "net_amount": 53,
}

# the fewest columns a row may have and still carry every field we read
UPS_MIN_COLUMNS = max(UPS_COLUMNS.values())

# charge classification codes (column 44) we know
UPS_CLASSIFICATIONS: dict[str, str] = {
    "FRT": "freight",
    "ACC": "accessorial",
    "FSC": "fuel surcharge",
    "TAX": "tax",
    "INF": "informational",
    "MSC": "miscellaneous",
}

# charge category codes (column 35) whose net amount may be negative: adjustments
UPS_CREDIT_CATEGORIES = frozenset({"ADJ"})

# --------------------------------------------------------------------------------------------
# FedEx billing (header row, one row per shipment)
# --------------------------------------------------------------------------------------------

# field -> header name
FEDEX_COLUMNS: dict[str, str] = {
    "account_number": "Bill to Account Number",
    "invoice_date": "Invoice Date",
    "invoice_number": "Invoice Number",
    "original_amount_due": "Original Amount Due",
    "current_balance": "Current Balance",
    "payor": "Payor",
    "tracking_id": "Express or Ground Tracking ID",
    "transportation_charge": "Transportation Charge Amount",
    "net_charge": "Net Charge Amount",
    "service_type": "Service Type",
    "ground_service": "Ground Service",
    "shipment_date": "Shipment Date",
    "rated_weight": "Rated Weight Amount",
    "rated_weight_units": "Rated Weight Units",
    "pieces": "Number of Pieces",
    "zone": "Zone Code",
    "currency": "Currency",
}

FEDEX_REQUIRED = ("account_number", "invoice_date", "invoice_number", "tracking_id",
                  "transportation_charge", "net_charge")

FEDEX_CHARGE_DESCRIPTION = "Tracking ID Charge Description"
FEDEX_CHARGE_AMOUNT = "Tracking ID Charge Amount"

# our charge code for a FedEx description, by keyword (first match wins)
FEDEX_CODE_KEYWORDS: tuple[tuple[str, str], ...] = (
    ("fuel", "FSC"),
    ("discount", "DSC"),
    ("performance pricing", "DSC"),
    ("credit", "DSC"),
    ("rebate", "DSC"),
    ("tax", "TAX"),
    ("gst", "TAX"),
    ("vat", "TAX"),
)
FEDEX_DEFAULT_CODE = "ACC"
FEDEX_TRANSPORTATION_CODE = "FRT"
CREDIT_CODES = frozenset({"DSC"})


def fedex_code(description: str) -> str:
    text = description.lower()
    for keyword, code in FEDEX_CODE_KEYWORDS:
        if keyword in text:
            return code
    return FEDEX_DEFAULT_CODE
