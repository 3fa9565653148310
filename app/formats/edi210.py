"""Map X12 210 (Motor Carrier Freight Details and Invoice) transaction sets to our invoice model.

One ST*210 is one invoice. The mapping is our own code over ``x12.X12Reader``:

- B3: B302 invoice number, B303 shipment id, B304 payment method, B306 invoice date,
  B307 net amount due (N2), B309 delivery date, B311 SCAC, B312 date; B2A01 gives the
  purpose (00 original, 04/05 change, 01 cancel); C301 the currency (USD when absent);
- N9 references, G62 dates, N1/N2/N3/N4 parties (with N9 inside an N1 loop kept on the party);
- each LX starts a charge group (L5 description, L0 weight and quantity, N9/N1 inside the loop),
  whose L1 segments are the charges (L101 line, L102/L103 rate, L104 amount N2, L108 special
  charge code, L112 description);
- L3 carries the total (L305, N2).

At the end of each invoice B307 = sum of L104 is checked, and so is L305 when the file carries
it (L3 and L305 are optional in the 210). A mismatch fails that invoice with
``TotalsMismatchError``. A bad invoice never stops the others: the event stream reports it as
``InvoiceFailed`` and carries on with the next transaction set. Envelope errors are file-level and
raise ``X12Error``.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from app.formats.invoice import (
    CHARGE_CHUNK,
    MAX_RATE,
    Charge,
    ChargeChunk,
    ChargeGroup,
    ChargeGroupParsed,
    ChargesParsed,
    ControlNumbers,
    DateRef,
    InvoiceError,
    InvoiceEvent,
    InvoiceFinished,
    InvoiceHeader,
    InvoiceStarted,
    InvoiceStructureError,
    ParseLimits,
    Party,
    Purpose,
    Reference,
    SourceFormat,
    SummaryBuilder,
    TotalsMismatchError,
    failure_from,
    parse_currency,
    parse_date,
    parse_implied_decimal,
    parse_optional_decimal,
)
from app.formats.x12 import (
    Segment,
    Source,
    TransactionSet,
    X12Reader,
    segment_control_character,
)

# L108 special charge codes whose amount may be negative (discounts, allowances, credits).
# A negative amount on any other code is kept, and flagged for review.
CREDIT_CHARGE_CODES = frozenset({"DSC"})

# B2A01 transaction set purpose codes.
PURPOSE_CODES: dict[str, Purpose] = {
    "00": Purpose.ORIGINAL,
    "04": Purpose.CHANGE,
    "05": Purpose.CHANGE,
    "01": Purpose.CANCEL,
}

# Party roles and N9 qualifiers that name the billed account, in order of preference.
_ACCOUNT_ROLES = ("BT", "PR")
_ACCOUNT_QUALIFIERS = ("11", "IT", "12")


class Edi210Parser:
    """Parse X12 210 text as a stream of invoice events (a file reaches it through
    ``files.parse_file``, which detects the format first).

    ``reader`` exposes the envelope: ``reader.issues`` lists the mismatches tolerated when
    ``strict_envelope`` is False, and the interchange, group and transaction-set counts.
    """

    def __init__(self, source: Source | Any, *, strict_envelope: bool = True,
                 limits: ParseLimits | None = None) -> None:
        self.reader = X12Reader(source, strict_envelope=strict_envelope)
        self.limits = limits or ParseLimits()

    def events(self) -> Iterator[InvoiceEvent]:
        for index, ts in enumerate(self.reader.transaction_sets()):
            mapper = _InvoiceMapper(ts, index, self.limits, self.reader)
            try:
                yield from mapper.run()
            except InvoiceError as error:
                if error.invoice_number is None:
                    error.invoice_number = mapper.invoice_number
                yield failure_from(index, error)


class _InvoiceMapper:
    def __init__(self, ts: TransactionSet, index: int, limits: ParseLimits,
                 reader: X12Reader) -> None:
        self.ts = ts
        self.index = index
        self.limits = limits
        self.reader = reader
        self.invoice_number: str | None = None
        self.header: InvoiceHeader | None = None
        self.fields: dict[str, Any] = {}
        self.references: list[Reference] = []
        self.dates: list[DateRef] = []
        self.parties: list[Party] = []
        self.party: Party | None = None
        self.group: ChargeGroup | None = None
        self.group_count = 0
        self.summary: SummaryBuilder | None = None
        self.declared_total: Decimal | None = None
        self.seen_l3 = False

    # -- helpers -----------------------------------------------------------------------------

    def _structure(self, seg: Segment | None, message: str) -> InvoiceStructureError:
        return InvoiceStructureError(
            message, invoice_number=self.invoice_number,
            segment=seg.tag if seg else None,
            position=seg.position if seg else self.ts.position,
        )

    def _amount(self, seg: Segment, n: int, what: str) -> Decimal:
        text = seg[n].strip()
        digits = text[1:] if text[:1] == "-" else text
        # the common case, without building a message: at most 14 digits stay under 1e12
        if len(digits) <= 14 and digits.isdigit() and digits.isascii():
            return Decimal(text).scaleb(-2)
        return parse_implied_decimal(
            seg[n], what=f"{seg.ref(n)} ({what}) in {seg.tag} at segment {seg.position}"
            f"{self._invoice_phrase()}",
            invoice_number=self.invoice_number, segment=seg.tag, position=seg.position,
        )

    def _invoice_phrase(self) -> str:
        return f" of invoice {self.invoice_number!r}" if self.invoice_number else ""

    def _start(self, seg: Segment | None) -> InvoiceStarted:
        """Build the header once everything before the first LX has been read."""
        if "invoice_number" not in self.fields:
            raise self._structure(
                seg, f"the transaction set at segment {self.ts.position} has no B3 segment "
                "before its charges; every 210 must begin with B3 (invoice number, date and "
                "net amount due)",
            )
        f = self.fields
        scac = f.get("scac") or self.ts.group.sender or self.ts.interchange.sender_id
        self.header = InvoiceHeader(
            index=self.index, source_format=SourceFormat.EDI210, carrier=scac, scac=scac,
            account=_account(self.parties, self.references),
            invoice_number=f["invoice_number"], invoice_date=f.get("invoice_date"),
            delivery_date=f.get("delivery_date"),
            shipment_id=f.get("shipment_id", ""), payment_method=f.get("payment_method", ""),
            currency=f.get("currency") or "USD", purpose=f.get("purpose", Purpose.ORIGINAL),
            purpose_code=f.get("purpose_code", ""), net_amount_due=f["net_amount_due"],
            references=self.references, dates=self.dates, parties=self.parties,
            control=ControlNumbers(
                interchange=self.ts.interchange.control, group=self.ts.group.control,
                transaction_set=self.ts.control, sender_id=self.ts.interchange.sender_id,
                receiver_id=self.ts.interchange.receiver_id, version=self.ts.group.version,
            ),
            position=self.ts.position,
        )
        self.summary = SummaryBuilder(self.header)
        return InvoiceStarted(self.header)

    def _flush_group(self) -> ChargeGroupParsed | None:
        group, self.group = self.group, None
        if group is None:
            return None
        assert self.summary is not None
        self.summary.add(group)
        return ChargeGroupParsed(self.index, group)

    # -- the mapping ---------------------------------------------------------------------------

    def run(self) -> Iterator[InvoiceEvent]:
        ts = self.ts
        if ts.code.strip() != "210":
            raise InvoiceStructureError(
                f"the transaction set at segment {ts.position} is ST01 {ts.code!r}, not a 210 "
                "invoice; send 210 transaction sets only",
                segment="ST", position=ts.position,
            )
        limit, reader = self.limits.max_rows_per_invoice, self.reader
        for count, seg in enumerate(ts.segments(), start=1):
            tag = seg.tag
            if count > limit or reader.control_seen:
                self._check_segment(seg, count)
            if tag == "LX":
                if self.header is None:
                    yield self._start(seg)
                flushed = self._flush_group()
                if flushed:
                    yield flushed
                self.group_count += 1
                self.group = ChargeGroup(sequence=self.group_count, key=seg[1].strip())
                self.party = None
            elif tag == "L1":
                chunk = self._charge(seg)
                if chunk:
                    yield chunk
            elif tag == "L3":
                if self.header is None:
                    yield self._start(seg)
                flushed = self._flush_group()
                if flushed:
                    yield flushed
                self.seen_l3 = True
                if seg[5].strip():
                    self.declared_total = self._amount(seg, 5, "total charges")
            elif tag in ("N1", "N2", "N3", "N4"):
                self._party(seg)
            elif tag == "N9":
                ref = Reference(qualifier=seg[1], value=seg[2], description=seg[3])
                if self.party is not None:
                    self.party.references.append(ref)
                elif self.group is not None:
                    self.group.references.append(ref)
                else:
                    self.references.append(ref)
            elif tag == "L5":
                if self.group is not None:
                    self.group.description = seg[2].strip()
                    self.group.commodity_code = seg[3].strip()
            elif tag == "L0":
                if self.group is not None and self.group.weight is None:
                    self.group.weight = parse_optional_decimal(seg[4])
                    self.group.weight_unit = seg[11].strip()  # L011; L005 is a qualifier
                    self.group.quantity = parse_optional_decimal(seg[8])
            elif tag == "B3":
                self._b3(seg)
            elif tag == "B2A":
                self._b2a(seg)
            elif tag == "C3":
                self.fields["currency"] = parse_currency(
                    seg[1], what=f"C301 (currency) in C3 at segment {seg.position}"
                    f"{self._invoice_phrase()}", invoice_number=self.invoice_number,
                    segment="C3", position=seg.position)
            elif tag == "G62":
                self.dates.append(DateRef(qualifier=seg[1], date=parse_date(seg[2]), raw=seg[2],
                                          time=seg[4]))
            if tag not in ("N1", "N2", "N3", "N4", "N9"):
                self.party = None
        if self.header is None:
            yield self._start(None)
        flushed = self._flush_group()
        if flushed:
            yield flushed
        assert self.summary is not None and self.header is not None
        summary = self.summary.build(self.declared_total)
        self._check_totals(summary.charges_total)
        yield InvoiceFinished(summary)

    def _check_segment(self, seg: Segment, count: int) -> None:
        """Refuse control characters, and more segments than an invoice may hold."""
        found = segment_control_character(seg, self.reader.delimiters)
        if found is not None:
            raise self._structure(seg, f"{seg.tag} at segment {seg.position}"
                                       f"{self._invoice_phrase()} holds the control character "
                                       f"{found!r}; the file is corrupt, ask its sender for a "
                                       "clean copy")
        limit = self.limits.max_rows_per_invoice
        if count > limit:
            raise self._structure(seg, f"the transaction set at segment {self.ts.position}"
                                       f"{self._invoice_phrase()} has more than {limit:,} "
                                       "segments; split the invoice, or raise "
                                       "HAUL_PARCEL_MAX_ROWS_PER_INVOICE if it is genuine")

    def _b3(self, seg: Segment) -> None:
        if "invoice_number" in self.fields:
            raise self._structure(seg, f"a second B3 at segment {seg.position}; a 210 "
                                       "transaction set holds exactly one invoice")
        number = seg[2].strip()
        if not number:
            raise self._structure(seg, f"B302 (invoice number) is empty in B3 at segment "
                                       f"{seg.position}; every invoice needs its number")
        self.invoice_number = number
        raw_date = seg[6].strip()
        invoice_date = parse_date(raw_date)
        if raw_date and invoice_date is None:
            raise self._structure(seg, f"B306 (invoice date) {raw_date!r} at segment "
                                       f"{seg.position} is not a CCYYMMDD or YYMMDD date")
        if not seg[7].strip():
            raise self._structure(seg, f"B307 (net amount due) is empty in B3 at segment "
                                       f"{seg.position} of invoice {number!r}; it is required")
        self.fields.update(
            invoice_number=number, shipment_id=seg[3].strip(), payment_method=seg[4].strip(),
            invoice_date=invoice_date, net_amount_due=self._amount(seg, 7, "net amount due"),
            scac=seg[11].strip(), delivery_date=parse_date(seg[9]),
        )
        # B309 (delivery date, qualified by B310) and B312 (shipment date) join the G62 dates
        for n, qualifier in ((9, seg[10].strip() or "B309"), (12, "B312")):
            if seg[n].strip():
                self.dates.append(DateRef(qualifier=qualifier, date=parse_date(seg[n]),
                                          raw=seg[n]))

    def _b2a(self, seg: Segment) -> None:
        code = seg[1].strip()
        purpose = PURPOSE_CODES.get(code)
        if purpose is None:
            known = ", ".join(f"{k} {v.value}" for k, v in PURPOSE_CODES.items())
            raise self._structure(seg, f"B2A01 {code!r} at segment {seg.position} is not a "
                                       f"purpose haul handles ({known})")
        self.fields["purpose"] = purpose
        self.fields["purpose_code"] = code

    def _party(self, seg: Segment) -> None:
        if seg.tag == "N1":
            new = Party(role=seg[1].strip(), name=seg[2].strip(), id_qualifier=seg[3].strip(),
                        id_code=seg[4].strip())
            (self.group.parties if self.group is not None else self.parties).append(new)
            self.party = new
            return
        party = self.party
        if party is None:
            return  # N2-N4 outside an N1 loop carry nothing we can attach
        if seg.tag == "N2":
            party.name = " ".join(x for x in (party.name, seg[1].strip(), seg[2].strip()) if x)
        elif seg.tag == "N3":
            party.address_lines.extend(x for x in (seg[1].strip(), seg[2].strip()) if x)
        else:
            party.city, party.state = seg[1].strip(), seg[2].strip()
            party.postal_code, party.country = seg[3].strip(), seg[4].strip()

    def _charge(self, seg: Segment) -> ChargesParsed | None:
        """Add one L1 to the open group; a full chunk of its charges comes back to be sent."""
        group = self.group
        if group is None:
            raise self._structure(seg, f"L1 at segment {seg.position}{self._invoice_phrase()} "
                                       "is outside an LX loop; every charge line must follow "
                                       "an LX")
        assert self.summary is not None
        limit = self.limits.max_charges_per_group
        if self.summary.group_charges + len(group.charges) >= limit:
            raise self._structure(seg, f"the LX loop {group.key!r} (charge group "
                                       f"{group.sequence}){self._invoice_phrase()} has more "
                                       f"than {limit:,} L1 charges (at segment {seg.position}); "
                                       "raise HAUL_PARCEL_MAX_CHARGES_PER_GROUP if such groups "
                                       "are genuine")
        code = seg[8].strip()
        amount = self._amount(seg, 4, "charge") if seg[4].strip() else Decimal("0.00")
        is_credit = code in CREDIT_CHARGE_CODES
        reason = ""
        if amount < 0 and not is_credit:
            reason = (f"negative charge {amount} on L1 at segment {seg.position} with special "
                      f"charge code {code or '(none)'!r}, which is not a discount or credit code")
        group.charges.append(Charge(
            line_number=seg[1].strip(), code=code, description=seg[12].strip(), amount=amount,
            rate=parse_optional_decimal(seg[2], limit=MAX_RATE), rate_qualifier=seg[3].strip(),
            is_credit=is_credit, needs_review=bool(reason), review_reason=reason,
            position=seg.position,
        ))
        if len(group.charges) < CHARGE_CHUNK:
            return None
        charges, group.charges = group.charges, []
        self.summary.add_charges(charges)
        return ChargesParsed(self.index, ChargeChunk(sequence=group.sequence, key=group.key,
                                                     charges=charges))

    def _check_totals(self, charges_total: Decimal) -> None:
        header = self.header
        assert header is not None
        b307 = header.net_amount_due
        problems = []
        if b307 != charges_total:
            problems.append(f"B307 net amount due is {b307}")
        if self.declared_total is not None and self.declared_total != charges_total:
            problems.append(f"L305 total charges is {self.declared_total}")
        if problems:
            raise TotalsMismatchError(
                f"invoice {header.invoice_number!r} (transaction set at segment "
                f"{self.ts.position}): the L104 charges sum to {charges_total}, but "
                + " and ".join(problems)
                + "; the carrier must correct the invoice",
                invoice_number=header.invoice_number, segment="L3" if self.seen_l3 else "B3",
                position=self.ts.position,
            )


def _account(parties: list[Party], references: list[Reference]) -> str:
    for role in _ACCOUNT_ROLES:
        for party in parties:
            if party.role != role:
                continue
            if party.id_code:
                return party.id_code
            for qualifier in _ACCOUNT_QUALIFIERS:
                for ref in party.references:
                    if ref.qualifier == qualifier and ref.value.strip():
                        return ref.value.strip()
    for qualifier in _ACCOUNT_QUALIFIERS:
        for ref in references:
            if ref.qualifier == qualifier and ref.value.strip():
                return ref.value.strip()
    return ""
