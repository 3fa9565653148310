"""Parse carrier billing CSV files (UPS billing data, FedEx billing) into our invoice model.

Both layouts stream row by row and produce the same events as the 210 parser. Rows are grouped
into invoices by their natural key (account, invoice number, invoice date), which must be
contiguous in the file, as carriers write them; charge groups are the tracking numbers (UPS) or
the shipment rows (FedEx). A bad row fails its invoice only: the remaining rows of that invoice
are skipped and the next invoice is parsed. Column positions come from ``csv_layouts``.

Every line is one row: carrier exports have no multi-line fields, so a quote left open, a
control character, a row short of its columns or an over-long line refuses that line (and fails
the invoice it belongs to) instead of reaching into the lines after it. ``RowCounts`` accounts
for every row: read = in parsed invoices + refused.
"""

from __future__ import annotations

import csv
import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from app.formats import csv_layouts as L
from app.formats.invoice import (
    CHARGE_CHUNK,
    MAX_LINE,
    Charge,
    ChargeChunk,
    ChargeGroup,
    ChargeGroupParsed,
    ChargesParsed,
    CsvFormatError,
    EmptyFileError,
    InvoiceError,
    InvoiceEvent,
    InvoiceFinished,
    InvoiceHeader,
    InvoiceStarted,
    InvoiceStructureError,
    ParseLimits,
    Reference,
    SourceFormat,
    SummaryBuilder,
    TotalsMismatchError,
    control_character,
    failure_from,
    parse_currency,
    parse_date,
    parse_decimal,
    parse_optional_decimal,
)
from app.formats.x12 import Source, iter_text_chunks

_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line longer than the cap: its text is dropped as it streams past, only its length is
    kept, so one endless line costs no memory."""

    length: int


def iter_lines(source: Source | Any, max_line: int = MAX_LINE
               ) -> Iterator[str | LongLine]:
    """Lines without their endings from any source ``x12.iter_text_chunks`` accepts, in one
    linear pass. Only CR, LF and CRLF end a line (form feed, U+001C or U+2028 are data, which
    the row checks refuse); a BOM on the first line is dropped; a line over ``max_line``
    characters comes out as ``LongLine``."""
    parts: list[str] = []
    size = 0
    first = True
    after_cr = False  # the previous chunk ended with CR: a LF starting this one is its pair
    for chunk in iter_text_chunks(source):
        if first and chunk:
            chunk = chunk.lstrip("\ufeff")
            first = False
        start = 1 if after_cr and chunk.startswith("\n") else 0
        after_cr = chunk.endswith("\r")
        for match in _BREAK.finditer(chunk, start):
            size += match.start() - start
            if size > max_line:
                yield LongLine(size)
            else:
                parts.append(chunk[start:match.start()])
                yield "".join(parts)
            parts, size, start = [], 0, match.end()
        size += len(chunk) - start
        if size <= max_line:
            parts.append(chunk[start:])
        else:
            parts = []
    if size > max_line:
        yield LongLine(size)
    elif size:
        yield "".join(parts)


@dataclass(frozen=True, slots=True)
class RefusedRow:
    """A line that is not one well-formed row: what could be read of it, and why."""

    cells: list[str]
    reason: str


def read_rows(source: Source | Any, max_line: int = MAX_LINE
              ) -> Iterator[tuple[int, list[str] | RefusedRow]]:
    """(line number, cells) for every line that is not blank. Each line is one row: a quote
    left open, a control character or an over-long line refuses that line only, and never
    reaches into the lines after it."""
    for number, line in enumerate(iter_lines(source, max_line), start=1):
        if isinstance(line, LongLine):
            yield number, RefusedRow([], f"it is {line.length:,} characters long, over the "
                                         f"{max_line:,} a line may have (HAUL_PARCEL_MAX_LINE)")
            continue
        if not line.strip():
            continue
        bad = control_character(line)
        if bad is not None:
            yield number, RefusedRow(_lenient(line), f"it holds the control character {bad!r}")
            continue
        try:
            yield number, next(csv.reader([line], strict=True))
        except csv.Error as error:
            yield number, RefusedRow(_lenient(line),
                                     f"it cannot be read as CSV ({error}; a quote left open?)")


def _lenient(line: str) -> list[str]:
    """What a refused line's cells look like, to find its invoice; [] when even that fails."""
    try:
        return next(csv.reader([line]))
    except csv.Error:
        return []


@dataclass
class RowCounts:
    """Every data row in or out: ``read == in_invoices + refused`` once the events end."""

    read: int = 0
    in_invoices: int = 0
    refused: int = 0
    issues: list[str] = dataclasses.field(default_factory=list)  # refused rows no invoice could own


class _InvoiceState:
    """The invoice being read: header, group in progress, running totals."""

    def __init__(self, header: InvoiceHeader, key: tuple[str, str, str]) -> None:
        self.header = header
        self.key = key
        self.summary = SummaryBuilder(header)
        self.group: ChargeGroup | None = None
        self.groups = 0
        self.rows = 0  # rows of this invoice read so far

    def flush(self) -> ChargeGroupParsed | None:
        group, self.group = self.group, None
        if group is None:
            return None
        self.summary.add(group)
        return ChargeGroupParsed(self.header.index, group)

    def charge(self, charge: Charge) -> ChargesParsed | None:
        """Add a charge to the open group; a full chunk of its charges comes back to be sent,
        so a shipment of many rows is never held whole."""
        group = self.group
        assert group is not None
        group.charges.append(charge)
        if len(group.charges) < CHARGE_CHUNK:
            return None
        charges, group.charges = group.charges, []
        self.summary.add_charges(charges)
        return ChargesParsed(self.header.index, ChargeChunk(sequence=group.sequence,
                                                            key=group.key, charges=charges))

    @property
    def group_charges(self) -> int:
        """Charges of the open group so far, those already sent in chunks included."""
        held = len(self.group.charges) if self.group is not None else 0
        return self.summary.group_charges + held


def _money(raw: str, what: str, invoice: str, row: int) -> Decimal:
    return parse_decimal(raw, what=f"{what} in row {row} of invoice {invoice!r}",
                         invoice_number=invoice, segment=None, position=row)


def _check_invoice_total(state: _InvoiceState, declared_label: str) -> InvoiceFinished:
    summary = state.summary.build(state.header.net_amount_due)
    declared = state.header.net_amount_due
    if declared is not None and declared != summary.charges_total:
        raise TotalsMismatchError(
            f"invoice {state.header.invoice_number!r} (from row {state.header.position}): its "
            f"charges sum to {summary.charges_total}, but {declared_label} is {declared}; the "
            "carrier must correct the invoice",
            invoice_number=state.header.invoice_number, position=state.header.position,
        )
    return InvoiceFinished(summary)


class _GroupedCsvParser:
    """Shared loop: contiguous invoice keys, per-invoice failure, one invoice at a time.

    ``counts`` accounts for every data row: in a parsed invoice, or refused (a row that cannot
    be read, and every row of an invoice that failed)."""

    source_format: SourceFormat
    declared_label: str

    def __init__(self, source: Source | Any, carrier: str,
                 limits: ParseLimits | None = None) -> None:
        self.source = source
        self.carrier = L.resolve_carrier(carrier)
        self.limits = limits or ParseLimits()
        self.counts = RowCounts()

    def rows(self) -> Iterator[tuple[int, list[str] | RefusedRow]]:
        raise NotImplementedError

    def key_of(self, row: list[str], rownum: int) -> tuple[str, str, str] | None:
        """The invoice key, or None when the row is too short to hold it."""
        raise NotImplementedError

    def header_of(self, row: list[str], rownum: int, index: int) -> InvoiceHeader:
        raise NotImplementedError

    def add_row(self, state: _InvoiceState, row: list[str], rownum: int
                ) -> Iterator[ChargeGroupParsed | ChargesParsed]:
        raise NotImplementedError

    def events(self) -> Iterator[InvoiceEvent]:
        seen: set[tuple[str, str, str]] = set()
        state: _InvoiceState | None = None
        failed_key: tuple[str, str, str] | None = None
        index = -1
        counts = self.counts
        orphans: list[str] = []  # refused rows no invoice could own yet
        for rownum, row in self.rows():
            counts.read += 1
            cells = row.cells if isinstance(row, RefusedRow) else row
            key = self.key_of(cells, rownum)
            if key is None:  # unreadable: it can only be a row of the invoice being read
                key = state.key if state is not None else failed_key
            if key is None:  # before the first invoice: it fails the invoice that follows
                counts.refused += 1
                orphans.append(f"row {rownum} was refused: {self._reason(row)}")
                continue
            if failed_key is not None and key == failed_key:
                counts.refused += 1  # the rest of an invoice that already failed
                continue
            if state is None or key != state.key:
                if state is not None:
                    yield from self._finish(state)
                    state = None
                if key in seen:
                    raise CsvFormatError(
                        f"row {rownum} belongs to invoice {key[1]!r} (account {key[0]!r}, date "
                        f"{key[2]!r}), whose rows appeared earlier and were interrupted by "
                        "another invoice; rows of one invoice must be together, sort the file "
                        "by invoice",
                        row=rownum,
                    )
                seen.add(key)
                failed_key = None
                index += 1
                try:
                    self._refuse(row, rownum, key[1])
                    self._orphans(orphans, key[1], rownum)
                    header = self.header_of(cells, rownum, index)
                except InvoiceError as error:
                    failed_key = key
                    counts.refused += 1
                    yield failure_from(index, error)
                    continue
                state = _InvoiceState(header, key)
                yield InvoiceStarted(header)
            try:
                state.rows += 1
                self._refuse(row, rownum, key[1])
                yield from self.add_row(state, cells, rownum)
                self._cap(state, rownum)
            except InvoiceError as error:
                failed_key = key
                counts.refused += state.rows
                yield failure_from(index, error)
                state = None
        if state is not None:
            yield from self._finish(state)
        counts.issues.extend(orphans)
        if counts.read and index < 0:
            raise CsvFormatError(
                f"none of the file's {counts.read} data rows could be read ("
                + "; ".join(counts.issues[:3])
                + f"); this is not a {self.carrier.name} billing file, or it was damaged",
                row=1,
            )
        if not counts.read:
            raise EmptyFileError(
                f"the {self.carrier.name} billing file has no data rows; send the file again "
                "with its contents"
            )

    @staticmethod
    def _reason(row: list[str] | RefusedRow) -> str:
        return row.reason if isinstance(row, RefusedRow) else "it is not a data row"

    @staticmethod
    def _refuse(row: list[str] | RefusedRow, rownum: int, invoice: str) -> None:
        """Fail the row's invoice when the row was refused."""
        if isinstance(row, RefusedRow):
            raise InvoiceStructureError(
                f"row {rownum} of invoice {invoice!r} was refused: {row.reason}; the invoice "
                "is incomplete without it, fix the row and send the file again",
                invoice_number=invoice, position=rownum,
            )

    @staticmethod
    def _orphans(orphans: list[str], invoice: str, rownum: int) -> None:
        """Fail the first invoice after refused rows that named no invoice: they may be its."""
        if orphans:
            reasons = "; ".join(orphans[:3])
            orphans.clear()
            raise InvoiceStructureError(
                f"invoice {invoice!r} (from row {rownum}) may be incomplete: {reasons}; fix the "
                "rows and send the file again",
                invoice_number=invoice, position=rownum,
            )

    def _cap(self, state: _InvoiceState, rownum: int) -> None:
        limit = self.limits.max_rows_per_invoice
        if state.rows > limit:
            raise InvoiceStructureError(
                f"invoice {state.header.invoice_number!r} has more than {limit:,} rows (row "
                f"{rownum}); split it, or raise HAUL_PARCEL_MAX_ROWS_PER_INVOICE if such "
                "invoices are genuine",
                invoice_number=state.header.invoice_number, position=rownum,
            )
        group = state.group
        if group is not None and state.group_charges > self.limits.max_charges_per_group:
            raise InvoiceStructureError(
                f"charge group {group.key!r} of invoice {state.header.invoice_number!r} has more "
                f"than {self.limits.max_charges_per_group:,} charges (row {rownum}); raise "
                "HAUL_PARCEL_MAX_CHARGES_PER_GROUP if such groups are genuine",
                invoice_number=state.header.invoice_number, position=rownum,
            )

    def _finish(self, state: _InvoiceState) -> Iterator[InvoiceEvent]:
        try:
            flushed = state.flush()
            if flushed:
                yield flushed
            finished = _check_invoice_total(state, self.declared_label)
        except InvoiceError as error:
            self.counts.refused += state.rows
            yield failure_from(state.header.index, error)
            return
        self.counts.in_invoices += state.rows
        yield finished


# --------------------------------------------------------------------------------------------
# UPS
# --------------------------------------------------------------------------------------------


_UPS_KEY_WIDTH = max(L.UPS_COLUMNS[f] for f in ("account_number", "invoice_number",
                                               "invoice_date"))


class UpsCsvParser(_GroupedCsvParser):
    source_format = SourceFormat.UPS_CSV
    declared_label = "the invoice amount (column 11)"

    def __init__(self, source: Source | Any, carrier: str = "ups",
                 limits: ParseLimits | None = None) -> None:
        super().__init__(source, carrier, limits)

    @staticmethod
    def col(row: list[str], field: str) -> str:
        return row[L.UPS_COLUMNS[field] - 1].strip()

    def rows(self) -> Iterator[tuple[int, list[str] | RefusedRow]]:
        for rownum, row in read_rows(self.source, self.limits.max_line):
            if not isinstance(row, RefusedRow) and len(row) < L.UPS_MIN_COLUMNS:
                row = RefusedRow(row, f"it has {len(row)} columns, but UPS billing data rows "
                                      f"have {L.UPS_COLUMN_COUNT} (at least "
                                      f"{L.UPS_MIN_COLUMNS} are needed)")
            yield rownum, row

    def key_of(self, row: list[str], rownum: int) -> tuple[str, str, str] | None:
        if len(row) < _UPS_KEY_WIDTH:
            return None
        return (self.col(row, "account_number"), self.col(row, "invoice_number"),
                self.col(row, "invoice_date"))

    def header_of(self, row: list[str], rownum: int, index: int) -> InvoiceHeader:
        number = self.col(row, "invoice_number")
        amount = self.col(row, "invoice_amount")
        return InvoiceHeader(
            index=index, source_format=self.source_format, carrier=self.carrier.name,
            scac=self.carrier.scac, account=self.col(row, "account_number"),
            invoice_number=number, invoice_date=parse_date(self.col(row, "invoice_date")),
            currency=parse_currency(self.col(row, "invoice_currency_code"),
                                    what=f"the currency (column 10) in row {rownum}",
                                    invoice_number=number, position=rownum),
            net_amount_due=_money(amount, "the invoice amount (column 11)", number, rownum)
            if amount else None,
            references=[Reference(qualifier="invoice_type_code", value=value)
                        for value in [self.col(row, "invoice_type_code")] if value],
            position=rownum,
        )

    def add_row(self, state: _InvoiceState, row: list[str], rownum: int
                ) -> Iterator[ChargeGroupParsed | ChargesParsed]:
        col = self.col
        number = state.header.invoice_number
        tracking = col(row, "tracking_number") or col(row, "lead_shipment_number")
        if state.group is None or state.group.key != tracking:
            flushed = state.flush()
            if flushed:
                yield flushed
            state.groups += 1
            refs = [Reference(qualifier=f, value=col(row, f)) for f in
                    ("shipment_reference_1", "package_reference_1") if col(row, f)]
            state.group = ChargeGroup(
                sequence=state.groups, key=tracking, zone=col(row, "zone"),
                weight=parse_optional_decimal(col(row, "billed_weight")),
                weight_unit=col(row, "billed_weight_uom"),
                quantity=parse_optional_decimal(col(row, "package_quantity")),
                references=refs,
            )
        classification = col(row, "charge_classification_code")
        category = col(row, "charge_category_code")
        amount = _money(col(row, "net_amount"), "the net amount (column 53)", number, rownum)
        incentive_raw = col(row, "incentive_amount")
        incentive = (_money(incentive_raw, "the incentive amount (column 52)", number, rownum)
                     if incentive_raw else None)
        is_credit = category in L.UPS_CREDIT_CATEGORIES
        reasons = []
        if classification not in L.UPS_CLASSIFICATIONS:
            reasons.append(f"unknown charge classification code {classification!r} in row "
                           f"{rownum}")
        if amount < 0 and not is_credit:
            reasons.append(f"negative net amount {amount} in row {rownum} on a "
                           f"{classification or 'blank'} charge that is not an adjustment")
        chunk = state.charge(Charge(
            line_number=str(rownum), code=classification,
            description=col(row, "charge_description"), amount=amount,
            incentive_amount=incentive, is_credit=is_credit, needs_review=bool(reasons),
            review_reason="; ".join(reasons), position=rownum,
        ))
        if chunk:
            yield chunk


# --------------------------------------------------------------------------------------------
# FedEx
# --------------------------------------------------------------------------------------------


class FedexCsvParser(_GroupedCsvParser):
    source_format = SourceFormat.FEDEX_CSV
    declared_label = "the original amount due"

    def __init__(self, source: Source | Any, carrier: str = "fedex",
                 limits: ParseLimits | None = None) -> None:
        super().__init__(source, carrier, limits)
        self.index: dict[str, int] = {}
        self.pairs: list[tuple[int, int]] = []

    def _read_header(self, header: list[str]) -> None:
        names = [h.strip().lstrip("\ufeff") for h in header]
        for field, name in L.FEDEX_COLUMNS.items():
            if name in names:
                self.index[field] = names.index(name)
        missing = [L.FEDEX_COLUMNS[f] for f in L.FEDEX_REQUIRED if f not in self.index]
        for i, name in enumerate(names):
            if name == L.FEDEX_CHARGE_DESCRIPTION:
                if i + 1 < len(names) and names[i + 1] == L.FEDEX_CHARGE_AMOUNT:
                    self.pairs.append((i, i + 1))
                else:
                    raise CsvFormatError(
                        f"header column {i + 1} is {L.FEDEX_CHARGE_DESCRIPTION!r} but is not "
                        f"followed by {L.FEDEX_CHARGE_AMOUNT!r}; the charge columns must come "
                        "in pairs",
                        row=1,
                    )
        if missing:
            raise CsvFormatError(
                f"the FedEx header row lacks {', '.join(repr(m) for m in missing)}; this is "
                "not a FedEx billing file, or its layout changed (see csv_layouts.py)",
                row=1,
            )

    def rows(self) -> Iterator[tuple[int, list[str] | RefusedRow]]:
        reader = read_rows(self.source, self.limits.max_line)
        first = next(reader, None)
        if first is None:
            raise EmptyFileError("the FedEx billing file is empty; send it again with its "
                                 "contents")
        rownum, header = first
        if isinstance(header, RefusedRow):
            raise CsvFormatError(f"the FedEx header row (line {rownum}) was refused: "
                                 f"{header.reason}; send the file as FedEx exports it",
                                 row=rownum)
        self._read_header(header)
        width = max(self.index.values()) + 1
        for rownum, row in reader:
            if isinstance(row, RefusedRow):
                yield rownum, row
            elif len(row) < width or self._inside_pair(len(row)):
                yield rownum, RefusedRow(row, f"it has {len(row)} columns, which ends it "
                                              f"short of the header's {len(header)}: a row must "
                                              "hold every column up to its last charge pair")
            else:
                yield rownum, row

    def _inside_pair(self, length: int) -> bool:
        """The row ends between a charge description and its amount."""
        return any(d < length <= a for d, a in self.pairs)

    def col(self, row: list[str], field: str) -> str:
        i = self.index.get(field)
        return row[i].strip() if i is not None else ""

    def key_of(self, row: list[str], rownum: int) -> tuple[str, str, str] | None:
        fields = ("account_number", "invoice_number", "invoice_date")
        if any(self.index.get(f, -1) >= len(row) for f in fields):
            return None
        return (self.col(row, "account_number"), self.col(row, "invoice_number"),
                self.col(row, "invoice_date"))

    def header_of(self, row: list[str], rownum: int, index: int) -> InvoiceHeader:
        number = self.col(row, "invoice_number")
        due = self.col(row, "original_amount_due")
        scac = "FDEG" if self.col(row, "ground_service") else self.carrier.scac
        return InvoiceHeader(
            index=index, source_format=self.source_format, carrier=self.carrier.name,
            scac=scac, account=self.col(row, "account_number"), invoice_number=number,
            invoice_date=parse_date(self.col(row, "invoice_date")),
            currency=parse_currency(self.col(row, "currency"),
                                    what=f"the currency in row {rownum}",
                                    invoice_number=number, position=rownum),
            net_amount_due=_money(due, "the original amount due", number, rownum) if due else None,
            payment_method=self.col(row, "payor"), position=rownum,
        )

    def add_row(self, state: _InvoiceState, row: list[str], rownum: int
                ) -> Iterator[ChargeGroupParsed | ChargesParsed]:
        flushed = state.flush()
        if flushed:
            yield flushed
        number = state.header.invoice_number
        col = self.col
        state.groups += 1
        group = ChargeGroup(
            sequence=state.groups, key=col(row, "tracking_id"),
            service=col(row, "service_type") or col(row, "ground_service"), zone=col(row, "zone"),
            weight=parse_optional_decimal(col(row, "rated_weight")),
            weight_unit=col(row, "rated_weight_units"),
            quantity=parse_optional_decimal(col(row, "pieces")),
        )
        transport = _money(col(row, "transportation_charge"), "the transportation charge",
                           number, rownum)
        group.charges.append(self._charge("Transportation Charge", transport, rownum,
                                          L.FEDEX_TRANSPORTATION_CODE))
        for d, a in self.pairs:
            if a >= len(row):
                break  # the row carries no more charge pairs
            description, raw = row[d].strip(), row[a].strip()
            if not description and not raw:
                continue
            amount = _money(raw, f"the charge amount for {description!r} (column {a + 1})",
                            number, rownum)
            group.charges.append(self._charge(description, amount, rownum,
                                              L.fedex_code(description)))
        net = _money(col(row, "net_charge"), "the net charge amount", number, rownum)
        if net != group.total:
            raise TotalsMismatchError(
                f"row {rownum} of invoice {number!r} (tracking {group.key!r}): the charges sum "
                f"to {group.total}, but the net charge amount is {net}; the carrier must "
                "correct the invoice",
                invoice_number=number, position=rownum,
            )
        state.group = group

    @staticmethod
    def _charge(description: str, amount: Decimal, rownum: int, code: str) -> Charge:
        is_credit = code in L.CREDIT_CODES
        reason = ""
        if amount < 0 and not is_credit:
            reason = (f"negative amount {amount} in row {rownum} on {description!r}, which is "
                      "not a discount or credit")
        return Charge(line_number=str(rownum), code=code, description=description,
                      amount=amount, is_credit=is_credit, needs_review=bool(reason),
                      review_reason=reason, position=rownum)


def csv_parser(source: Source | Any, carrier: str,
               limits: ParseLimits | None = None) -> _GroupedCsvParser:
    """The parser of a carrier's CSV layout; ``carrier`` picks it (ups or fedex)."""
    info = L.resolve_carrier(carrier)
    if info.csv_layout == "ups":
        return UpsCsvParser(source, info.name, limits)
    if info.csv_layout == "fedex":
        return FedexCsvParser(source, info.name, limits)
    raise CsvFormatError(
        f"haul has no CSV layout for carrier {info.name!r}; it reads {info.name} files as EDI "
        "only"
    )


def iter_csv_events(source: Source | Any, carrier: str,
                    limits: ParseLimits | None = None) -> Iterator[InvoiceEvent]:
    """Invoice events of a carrier CSV file; ``carrier`` picks the layout (ups or fedex)."""
    return csv_parser(source, carrier, limits).events()
