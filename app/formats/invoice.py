"""The normalized parcel invoice, and the typed errors of the parsing layer.

Every input format (X12 210, UPS billing CSV, FedEx billing CSV) is parsed into the same model,
so the audit and storage code never looks at a carrier's file layout. Parsers stream: they emit
events (an invoice starts, a chunk of a charge group's charges is read, a charge group ends, the
invoice finishes or fails), so neither an invoice nor one charge group of hundreds of thousands
of charges ever sits in memory at once: a parser keeps only running totals and the group's own
fields. ``collect_invoices`` turns the events back into whole ``Invoice`` objects when an
invoice is known to be small.

The errors carry a stable ``error_type`` so the activity layer can raise them as
``ApplicationError(non_retryable=True, type=error.error_type)``; this module does not import
temporalio.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

# --------------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------------


class ParcelInputError(Exception):
    """Base of every parsing error. Bad input is never worth a retry."""

    error_type: ClassVar[str] = "ParcelInputError"
    non_retryable: ClassVar[bool] = True

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def details(self) -> dict[str, object]:
        """A JSON-safe description, for the failure store."""
        return {"error_type": self.error_type, "message": self.message}


class EmptyFileError(ParcelInputError):
    error_type = "ParcelEmptyFile"


class UnrecognizedFormatError(ParcelInputError):
    """The file is neither X12 EDI nor one of the known carrier CSV layouts."""

    error_type = "ParcelUnrecognizedFormat"


class UnknownCarrierError(ParcelInputError):
    error_type = "ParcelUnknownCarrier"


class CsvFormatError(ParcelInputError):
    """A CSV file that cannot be read as the layout it claims to be (file-level)."""

    error_type = "ParcelCsvFormat"

    def __init__(self, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.row = row

    def details(self) -> dict[str, object]:
        return {**super().details(), "row": self.row}


class InvoiceError(ParcelInputError):
    """One invoice is bad; the rest of the file can still be processed."""

    error_type = "ParcelInvoiceError"

    def __init__(
        self,
        message: str,
        *,
        invoice_number: str | None = None,
        segment: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.invoice_number = invoice_number
        self.segment = segment
        self.position = position

    def details(self) -> dict[str, object]:
        return {
            **super().details(),
            "invoice_number": self.invoice_number,
            "segment": self.segment,
            "position": self.position,
        }


class InvalidAmountError(InvoiceError):
    error_type = "ParcelInvalidAmount"


class TotalsMismatchError(InvoiceError):
    error_type = "ParcelTotalsMismatch"


class InvoiceStructureError(InvoiceError):
    """Segments or rows in an order the format does not allow, or a required value missing."""

    error_type = "ParcelInvoiceStructure"


# --------------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------------


MAX_LINE = 1 << 20  # characters in one CSV line; UPS's 250 columns come nowhere near it
# Charges a parser holds of one open charge group before it emits them as a ChargesParsed chunk
CHARGE_CHUNK = 1_000


@dataclass(frozen=True, slots=True)
class ParseLimits:
    """Caps that keep one hostile file from holding a worker's memory or a transaction open.

    A charge group's charges stream out in chunks of ``CHARGE_CHUNK``, so memory does not grow
    with ``max_charges_per_group``: it is a guard against a runaway loop, with a clear error.
    ``max_rows_per_invoice`` (X12 segments of one transaction set, or CSV rows of one invoice)
    bounds one normalize transaction; ``max_line`` bounds a CSV line. The worker reads them
    from HAUL_PARCEL_* (``models.ParserSettings``)."""

    max_charges_per_group: int = 1_000_000
    max_rows_per_invoice: int = 2_000_000
    max_line: int = MAX_LINE


# --------------------------------------------------------------------------------------------
# value parsing
# --------------------------------------------------------------------------------------------

# What the app database's columns hold: numeric(14, 2) for one amount, numeric(16, 2) for
# a group's or an invoice's total, numeric(12, 3) for a weight, numeric(14, 4) for a rate.
MAX_AMOUNT = Decimal("1e12")
MAX_TOTAL = Decimal("1e14")
MAX_WEIGHT = Decimal("1e9")
MAX_RATE = Decimal("1e10")
_CENT = Decimal("0.01")
# C0 controls but tab, and DEL: no carrier value holds them, and Postgres refuses NUL outright
_CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F))
_CURRENCY = re.compile(r"[A-Z]{3}")


@functools.lru_cache(maxsize=64)
def _control_pattern(allowed: str) -> re.Pattern[str]:
    return re.compile("[" + "".join(re.escape(c) for c in _CONTROLS if c not in allowed) + "]")


def _shown(raw: str, room: int = 40) -> str:
    """A value for an error message: quoted, and cut short when a hostile file made it huge."""
    return repr(raw) if len(raw) <= room else f"{raw[:room]!r}... ({len(raw):,} characters)"


def control_character(text: str, allowed: str = "") -> str | None:
    """The first control character in ``text`` (``allowed`` ones aside), or None."""
    match = _control_pattern(allowed).search(text)
    return match.group() if match else None


def check_amount(
    value: Decimal,
    raw: str,
    *,
    what: str,
    limit: Decimal = MAX_AMOUNT,
    invoice_number: str | None = None,
    segment: str | None = None,
    position: int | None = None,
) -> Decimal:
    """``value`` when it is a money amount the database can hold: under ``limit`` in size and
    in whole cents; ``InvalidAmountError`` naming ``what`` otherwise."""
    problem = None
    if not value.is_finite():
        problem = "not a number"
    elif value.copy_abs() >= limit:
        problem = f"out of range (amounts must be under {limit:,.0f} in size)"
    elif value != value.quantize(_CENT):
        problem = "more precise than a cent (at most 2 decimal places)"
    if problem is not None:
        raise InvalidAmountError(
            f"{what} is {_shown(raw)}, which is {problem}; fix the amount in the file and send it "
            "again",
            invoice_number=invoice_number,
            segment=segment,
            position=position,
        )
    return value


def parse_currency(
    raw: str,
    *,
    what: str,
    invoice_number: str | None = None,
    segment: str | None = None,
    position: int | None = None,
) -> str:
    """An ISO 4217 code (three capital letters), USD when blank; ``InvoiceStructureError``
    naming ``what`` otherwise."""
    text = raw.strip()
    if not text:
        return "USD"
    if _CURRENCY.fullmatch(text) is None:
        raise InvoiceStructureError(
            f"{what} is {_shown(text)}, which is not a currency code (three capital letters "
            "such as USD); fix the currency in the file and send it again",
            invoice_number=invoice_number,
            segment=segment,
            position=position,
        )
    return text


def parse_implied_decimal(
    raw: str,
    *,
    places: int = 2,
    what: str,
    invoice_number: str | None = None,
    segment: str | None = None,
    position: int | None = None,
) -> Decimal:
    """X12 type Nn: digits with an optional leading minus, and ``places`` implied decimals."""
    text = raw.strip()
    body = text[1:] if text.startswith("-") else text
    if not body or not body.isdigit() or not body.isascii():
        raise InvalidAmountError(
            f"{what} is {raw!r}, which is not a number of type N{places} (digits with "
            f"{places} implied decimals, optional leading '-'); fix the amount in the file and "
            "send it again",
            invoice_number=invoice_number,
            segment=segment,
            position=position,
        )
    return check_amount(Decimal(text).scaleb(-places), raw, what=what,
                        invoice_number=invoice_number, segment=segment, position=position)


def parse_decimal(
    raw: str,
    *,
    what: str,
    invoice_number: str | None = None,
    segment: str | None = None,
    position: int | None = None,
) -> Decimal:
    """A plain decimal with an explicit point (X12 type R, or a CSV money column)."""
    text = raw.strip()
    try:
        value = Decimal(text)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite():
        raise InvalidAmountError(
            f"{what} is {_shown(raw)}, which is not a number; fix the value in the file and "
            "send it again",
            invoice_number=invoice_number,
            segment=segment,
            position=position,
        )
    return check_amount(value, raw, what=what, invoice_number=invoice_number, segment=segment,
                        position=position)


def parse_optional_decimal(raw: str, *, limit: Decimal = MAX_WEIGHT) -> Decimal | None:
    """Informational numbers (weights, rates): a bad one, or one too large for the database
    (``limit``), is dropped, not fatal."""
    text = raw.strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value.copy_abs() < limit else None


def parse_date(raw: str) -> dt.date | None:
    """CCYYMMDD, YYMMDD (X12) or ISO / US dates (CSV). None when blank or unreadable."""
    text = raw.strip()
    if not text:
        return None
    formats = ("%Y%m%d", "%y%m%d") if text.isdigit() else ("%Y-%m-%d", "%m/%d/%Y", "%m/%d/%y")
    for fmt in formats:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


class SourceFormat(StrEnum):
    EDI210 = "edi210"
    UPS_CSV = "ups_csv"
    FEDEX_CSV = "fedex_csv"


class Purpose(StrEnum):
    """What an invoice does to earlier revisions with the same natural key (B2A01)."""

    ORIGINAL = "original"
    CHANGE = "change"  # supersedes the earlier revision
    CANCEL = "cancel"  # voids the invoice


class _Model(BaseModel):
    model_config = ConfigDict(frozen=False, extra="forbid")


class Reference(_Model):
    qualifier: str
    value: str
    description: str = ""


class DateRef(_Model):
    qualifier: str
    date: dt.date | None
    raw: str
    time: str = ""


class Party(_Model):
    role: str  # N101: BT bill-to, SH shipper, CN consignee, PR payer, RT return ...
    name: str = ""
    id_qualifier: str = ""
    id_code: str = ""
    address_lines: list[str] = Field(default_factory=list)
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    references: list[Reference] = Field(default_factory=list)


class Charge(_Model):
    line_number: str = ""
    code: str = ""  # L108 special charge code, UPS classification, or FedEx description code
    description: str = ""
    amount: Decimal
    rate: Decimal | None = None
    rate_qualifier: str = ""
    incentive_amount: Decimal | None = None
    is_credit: bool = False  # the charge kind allows a negative amount (discount, credit)
    needs_review: bool = False
    review_reason: str = ""
    position: int | None = None  # segment index or CSV row number, for error reports


class ChargeGroup(_Model):
    """One LX loop of a 210, or one shipment / tracking number of a carrier CSV.

    In the event stream a group's ``charges`` are only those not already sent in
    ``ChargesParsed`` chunks (``collect_invoices`` puts them back together)."""

    sequence: int  # 1-based order within the invoice: the natural key with the invoice key
    key: str = ""  # LX01, or the tracking number
    description: str = ""
    commodity_code: str = ""
    weight: Decimal | None = None
    weight_unit: str = ""
    quantity: Decimal | None = None
    service: str = ""
    zone: str = ""
    references: list[Reference] = Field(default_factory=list)
    parties: list[Party] = Field(default_factory=list)
    charges: list[Charge] = Field(default_factory=list)

    @property
    def total(self) -> Decimal:
        return sum((c.amount for c in self.charges), Decimal("0.00"))


class ChargeChunk(_Model):
    """Charges of the open group ``sequence``, in file order, sent before the group ends."""

    sequence: int
    key: str = ""
    charges: list[Charge]


class InvoiceKey(_Model):
    """The natural key: SCAC, account, invoice number and invoice date."""

    scac: str
    account: str
    invoice_number: str
    invoice_date: dt.date | None


class ControlNumbers(_Model):
    interchange: str = ""  # ISA13
    group: str = ""  # GS06
    transaction_set: str = ""  # ST02
    sender_id: str = ""  # ISA06, trimmed
    receiver_id: str = ""  # ISA08, trimmed
    version: str = ""  # GS08


class InvoiceHeader(_Model):
    """Everything about an invoice except its charge groups."""

    index: int  # 0-based ordinal of the invoice in the file
    source_format: SourceFormat
    carrier: str  # our carrier name: "ups", "fedex", or the SCAC for EDI
    scac: str
    account: str = ""
    invoice_number: str
    invoice_date: dt.date | None = None
    delivery_date: dt.date | None = None
    shipment_id: str = ""
    payment_method: str = ""
    currency: str = "USD"
    purpose: Purpose = Purpose.ORIGINAL
    purpose_code: str = ""
    net_amount_due: Decimal | None = None  # B307, or the invoice amount column
    references: list[Reference] = Field(default_factory=list)
    dates: list[DateRef] = Field(default_factory=list)
    parties: list[Party] = Field(default_factory=list)
    control: ControlNumbers | None = None
    position: int  # segment index of ST, or the first CSV row (1-based)

    @property
    def key(self) -> InvoiceKey:
        return InvoiceKey(
            scac=self.scac,
            account=self.account,
            invoice_number=self.invoice_number,
            invoice_date=self.invoice_date,
        )


class InvoiceSummary(_Model):
    """Counts and totals of one parsed invoice, checked against the file's own totals."""

    index: int
    invoice_number: str
    key: InvoiceKey
    group_count: int
    charge_count: int
    charges_total: Decimal  # the sum of every charge amount
    net_amount_due: Decimal | None
    declared_total: Decimal | None  # L305, when the file carries one
    needs_review_count: int
    currency: str


class Invoice(_Model):
    header: InvoiceHeader
    charge_groups: list[ChargeGroup]
    summary: InvoiceSummary


class InvoiceFailure(_Model):
    """One invoice that could not be parsed: what went wrong, and where."""

    index: int
    invoice_number: str | None
    error_type: str
    message: str
    segment: str | None = None
    position: int | None = None


# --------------------------------------------------------------------------------------------
# events
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InvoiceStarted:
    header: InvoiceHeader


@dataclass(frozen=True, slots=True)
class ChargesParsed:
    """A chunk of the open charge group's charges; the group's end follows as
    ``ChargeGroupParsed``, carrying the charges after the last chunk."""

    invoice_index: int
    chunk: ChargeChunk


@dataclass(frozen=True, slots=True)
class ChargeGroupParsed:
    """A charge group ends: its fields, and its charges not already sent in chunks."""

    invoice_index: int
    group: ChargeGroup


@dataclass(frozen=True, slots=True)
class InvoiceFinished:
    summary: InvoiceSummary


@dataclass(frozen=True, slots=True)
class InvoiceFailed:
    """The invoice at ``index`` failed. Any groups already emitted for it must be discarded."""

    failure: InvoiceFailure
    error: InvoiceError


InvoiceEvent = (InvoiceStarted | ChargesParsed | ChargeGroupParsed | InvoiceFinished
                | InvoiceFailed)
InvoiceResult = Invoice | InvoiceFailure


def failure_from(index: int, error: InvoiceError) -> InvoiceFailed:
    return InvoiceFailed(
        failure=InvoiceFailure(
            index=index,
            invoice_number=error.invoice_number,
            error_type=error.error_type,
            message=error.message,
            segment=error.segment,
            position=error.position,
        ),
        error=error,
    )


class SummaryBuilder:
    """Accumulates counts and totals while charges stream past: per charge, never per list."""

    def __init__(self, header: InvoiceHeader) -> None:
        self.header = header
        self.group_count = 0
        self.charge_count = 0
        self.charges_total = Decimal("0.00")
        self.needs_review_count = 0
        self.group_charges = 0  # of the open group, chunks included
        self.group_total = Decimal("0.00")
        self._last_position: int | None = None

    def add_charges(self, charges: Iterable[Charge]) -> None:
        """Count charges of the open group (a chunk, or its tail when it ends)."""
        for charge in charges:
            self.group_charges += 1
            self.group_total += charge.amount
            if charge.needs_review:
                self.needs_review_count += 1
            self._last_position = charge.position

    def add(self, group: ChargeGroup) -> None:
        """The group ends: ``group.charges`` are its charges not yet counted."""
        self.add_charges(group.charges)
        group_total = self.group_total
        self.group_count += 1
        self.charge_count += self.group_charges
        self.charges_total += group_total
        position = self._last_position
        self.group_charges, self.group_total, self._last_position = 0, Decimal("0.00"), None
        if group_total.copy_abs() >= MAX_TOTAL or self.charges_total.copy_abs() >= MAX_TOTAL:
            self._too_large(group, group_total, position)

    def _too_large(self, group: ChargeGroup, group_total: Decimal, position: int | None) -> None:
        """A total the database cannot hold: numeric(16, 2), like every amount summed."""
        big = group_total.copy_abs() >= MAX_TOTAL
        what = f"charge group {group.sequence} ({group.key!r})" if big else "the charges"
        raise InvalidAmountError(
            f"{what} of invoice {self.header.invoice_number!r} sum to "
            f"{group_total if big else self.charges_total}, beyond the {MAX_TOTAL:,.0f} a total "
            "may reach; the file is corrupt or hostile",
            invoice_number=self.header.invoice_number,
            segment="L1" if self.header.source_format is SourceFormat.EDI210 else None,
            position=position,
        )

    def build(self, declared_total: Decimal | None = None) -> InvoiceSummary:
        h = self.header
        return InvoiceSummary(
            index=h.index,
            invoice_number=h.invoice_number,
            key=h.key,
            group_count=self.group_count,
            charge_count=self.charge_count,
            charges_total=self.charges_total,
            net_amount_due=h.net_amount_due,
            declared_total=declared_total,
            needs_review_count=self.needs_review_count,
            currency=h.currency,
        )


def collect_invoices(events: Iterable[InvoiceEvent]) -> Iterator[InvoiceResult]:
    """Whole invoices (or failures) from an event stream, chunks put back into their groups.
    Holds one invoice in memory at a time, so use the events directly for invoices too large
    for that."""
    header: InvoiceHeader | None = None
    groups: list[ChargeGroup] = []
    streamed: list[Charge] = []  # chunks of the open group
    for event in events:
        if isinstance(event, InvoiceStarted):
            header, groups, streamed = event.header, [], []
        elif isinstance(event, ChargesParsed):
            streamed.extend(event.chunk.charges)
        elif isinstance(event, ChargeGroupParsed):
            if streamed:
                event.group.charges[:0] = streamed
                streamed = []
            groups.append(event.group)
        elif isinstance(event, InvoiceFinished):
            assert header is not None and header.index == event.summary.index
            yield Invoice(header=header, charge_groups=groups, summary=event.summary)
            header, groups = None, []
        else:
            yield event.failure
            header, groups, streamed = None, [], []
