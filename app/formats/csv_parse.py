"""Parse carrier billing CSV files (UPS billing data, FedEx billing) into our invoice model.

Both layouts stream row by row and produce the same events as the 210 parser. Rows are grouped
into invoices by their natural key (account, invoice number, invoice date), which must be
contiguous in the file, as carriers write them; charge groups are the tracking numbers (UPS) or
the shipment rows (FedEx). A bad row fails its invoice only: the remaining rows of that invoice
are skipped and the next invoice is parsed. Column positions come from ``csv_layouts``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from app.formats import csv_layouts as L
from app.formats.invoice import (
    Charge,
    ChargeGroup,
    ChargeGroupParsed,
    CsvFormatError,
    EmptyFileError,
    InvoiceError,
    InvoiceEvent,
    InvoiceFinished,
    InvoiceHeader,
    InvoiceStarted,
    Reference,
    SourceFormat,
    SummaryBuilder,
    TotalsMismatchError,
    failure_from,
    parse_date,
    parse_decimal,
    parse_optional_decimal,
)
from app.formats.x12 import Source, iter_text_chunks


def iter_lines(source: Source | Any) -> Iterator[str]:
    """Lines (with their endings) from any source ``x12.iter_text_chunks`` accepts; a BOM on
    the first line is dropped."""
    pending = ""
    first = True
    for chunk in iter_text_chunks(source):
        if first and chunk:
            chunk = chunk.lstrip("\ufeff")
            first = False
        pending += chunk
        lines = pending.splitlines(keepends=True)
        pending = lines.pop() if lines and not lines[-1].endswith(("\n", "\r")) else ""
        yield from lines
    if pending:
        yield pending


def read_csv(source: Source | Any) -> Iterator[list[str]]:
    """CSV rows, with the csv module's own errors (NUL bytes, oversized fields, a quote left
    open) turned into ``CsvFormatError``."""
    reader = csv.reader(iter_lines(source))
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise CsvFormatError(
                f"line {reader.line_num} cannot be read as CSV ({error}); check that the file "
                "is the carrier's CSV export and was not cut short",
                row=reader.line_num,
            ) from None
        yield row


class _InvoiceState:
    """The invoice being read: header, group in progress, running totals."""

    def __init__(self, header: InvoiceHeader, key: tuple[str, str, str]) -> None:
        self.header = header
        self.key = key
        self.summary = SummaryBuilder(header)
        self.group: ChargeGroup | None = None
        self.groups = 0

    def flush(self) -> ChargeGroupParsed | None:
        group, self.group = self.group, None
        if group is None:
            return None
        self.summary.add(group)
        return ChargeGroupParsed(self.header.index, group)


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
    """Shared loop: contiguous invoice keys, per-invoice failure, one invoice at a time."""

    source_format: SourceFormat
    declared_label: str

    def __init__(self, source: Source | Any, carrier: str) -> None:
        self.source = source
        self.carrier = L.resolve_carrier(carrier)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        raise NotImplementedError

    def key_of(self, row: list[str], rownum: int) -> tuple[str, str, str]:
        raise NotImplementedError

    def header_of(self, row: list[str], rownum: int, index: int) -> InvoiceHeader:
        raise NotImplementedError

    def add_row(self, state: _InvoiceState, row: list[str], rownum: int
                ) -> Iterator[ChargeGroupParsed]:
        raise NotImplementedError

    def events(self) -> Iterator[InvoiceEvent]:
        seen: set[tuple[str, str, str]] = set()
        state: _InvoiceState | None = None
        failed_key: tuple[str, str, str] | None = None
        index = -1
        any_row = False
        for rownum, row in self.rows():
            any_row = True
            key = self.key_of(row, rownum)
            if failed_key is not None and key == failed_key:
                continue  # the rest of an invoice that already failed
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
                    header = self.header_of(row, rownum, index)
                except InvoiceError as error:
                    failed_key = key
                    yield failure_from(index, error)
                    continue
                state = _InvoiceState(header, key)
                yield InvoiceStarted(header)
            try:
                yield from self.add_row(state, row, rownum)
            except InvoiceError as error:
                failed_key = key
                yield failure_from(index, error)
                state = None
        if state is not None:
            yield from self._finish(state)
        if not any_row:
            raise EmptyFileError(
                f"the {self.carrier.name} billing file has no data rows; send the file again "
                "with its contents"
            )

    def _finish(self, state: _InvoiceState) -> Iterator[InvoiceEvent]:
        try:
            flushed = state.flush()
            if flushed:
                yield flushed
            yield _check_invoice_total(state, self.declared_label)
        except InvoiceError as error:
            yield failure_from(state.header.index, error)


# --------------------------------------------------------------------------------------------
# UPS
# --------------------------------------------------------------------------------------------


class UpsCsvParser(_GroupedCsvParser):
    source_format = SourceFormat.UPS_CSV
    declared_label = "the invoice amount (column 11)"

    def __init__(self, source: Source | Any, carrier: str = "ups") -> None:
        super().__init__(source, carrier)

    @staticmethod
    def col(row: list[str], field: str) -> str:
        return row[L.UPS_COLUMNS[field] - 1].strip()

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        for rownum, row in enumerate(read_csv(self.source), start=1):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < L.UPS_MIN_COLUMNS:
                raise CsvFormatError(
                    f"row {rownum} has {len(row)} columns, but UPS billing data rows have "
                    f"{L.UPS_COLUMN_COUNT} (at least {L.UPS_MIN_COLUMNS} are needed); this is "
                    "not a UPS billing data file, or it was cut short",
                    row=rownum,
                )
            yield rownum, row

    def key_of(self, row: list[str], rownum: int) -> tuple[str, str, str]:
        return (self.col(row, "account_number"), self.col(row, "invoice_number"),
                self.col(row, "invoice_date"))

    def header_of(self, row: list[str], rownum: int, index: int) -> InvoiceHeader:
        number = self.col(row, "invoice_number")
        amount = self.col(row, "invoice_amount")
        return InvoiceHeader(
            index=index, source_format=self.source_format, carrier=self.carrier.name,
            scac=self.carrier.scac, account=self.col(row, "account_number"),
            invoice_number=number, invoice_date=parse_date(self.col(row, "invoice_date")),
            currency=self.col(row, "invoice_currency_code") or "USD",
            net_amount_due=_money(amount, "the invoice amount (column 11)", number, rownum)
            if amount else None,
            references=[Reference(qualifier="invoice_type_code", value=value)
                        for value in [self.col(row, "invoice_type_code")] if value],
            position=rownum,
        )

    def add_row(self, state: _InvoiceState, row: list[str], rownum: int
                ) -> Iterator[ChargeGroupParsed]:
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
        state.group.charges.append(Charge(
            line_number=str(rownum), code=classification, description=col(row,
                                                                           "charge_description"),
            amount=amount, incentive_amount=incentive, is_credit=is_credit,
            needs_review=bool(reasons), review_reason="; ".join(reasons), position=rownum,
        ))


# --------------------------------------------------------------------------------------------
# FedEx
# --------------------------------------------------------------------------------------------


class FedexCsvParser(_GroupedCsvParser):
    source_format = SourceFormat.FEDEX_CSV
    declared_label = "the original amount due"

    def __init__(self, source: Source | Any, carrier: str = "fedex") -> None:
        super().__init__(source, carrier)
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

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        reader = read_csv(self.source)
        header = next(reader, None)
        if header is None:
            raise EmptyFileError("the FedEx billing file is empty; send it again with its "
                                 "contents")
        self._read_header(header)
        width = max([*self.index.values(), *(a for _, a in self.pairs)]) + 1
        for rownum, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < width:
                row = row + [""] * (width - len(row))
            yield rownum, row

    def col(self, row: list[str], field: str) -> str:
        i = self.index.get(field)
        return row[i].strip() if i is not None else ""

    def key_of(self, row: list[str], rownum: int) -> tuple[str, str, str]:
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
            currency=self.col(row, "currency") or "USD",
            net_amount_due=_money(due, "the original amount due", number, rownum) if due else None,
            payment_method=self.col(row, "payor"), position=rownum,
        )

    def add_row(self, state: _InvoiceState, row: list[str], rownum: int
                ) -> Iterator[ChargeGroupParsed]:
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


def iter_csv_events(source: Source | Any, carrier: str) -> Iterator[InvoiceEvent]:
    """Invoice events of a carrier CSV file; ``carrier`` picks the layout (ups or fedex)."""
    info = L.resolve_carrier(carrier)
    if info.csv_layout == "ups":
        return UpsCsvParser(source, info.name).events()
    if info.csv_layout == "fedex":
        return FedexCsvParser(source, info.name).events()
    raise CsvFormatError(
        f"haul has no CSV layout for carrier {info.name!r}; it reads {info.name} files as EDI "
        "only"
    )
