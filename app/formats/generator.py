"""Deterministic generator of X12 210 carrier invoice files.

Load tests, benchmarks, samples and tests need files of any size (up to 10,000 invoices, or
200,000 charges in one invoice) that look like what carriers really send. The generator streams
to disk, can write each quirk real 210 files have (BOM, CRLF, indentation, lines wrapped
mid-segment, a `.` terminator, several GS groups, a non-fixed-length ISA), and can plant bad
invoices (a non-numeric amount, totals that do not add up, a negative charge that needs review).
It returns a report of what it wrote, so a test can compare a parse with the generator's own
counts and totals.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO

_ZERO = Decimal("0.00")

# L108 codes the generator uses for ordinary charges, with a description
_EDI_CHARGE_CODES = (("400", "LINEHAUL"), ("FUE", "FUEL SURCHARGE"), ("RES", "RESIDENTIAL"),
                     ("LFT", "LIFTGATE"), ("HAZ", "HAZARDOUS MATERIAL"), ("APT", "APPOINTMENT"))


@dataclass(frozen=True)
class EdiQuirks:
    """How the 210 text is laid out. The defaults give one clean line per file."""

    bom: bool = False
    newline: str = ""  # written after each segment terminator: "", "\n" or "\r\n"
    indent: bool = False  # indent segments by envelope level (needs ``newline``)
    wrap: int | None = None  # wrap the text every N characters, mid-segment
    terminator: str = "~"  # "~", ".", "\n" ...
    element_separator: str = "*"
    sub_element_separator: str = ">"
    fixed_isa: bool = True  # False: ISA fields are not padded to their fixed widths

    def check(self) -> None:
        delimiters = (self.element_separator, self.sub_element_separator, self.terminator)
        if len(set(delimiters)) != 3 or any(len(d) != 1 or d.isalnum() for d in delimiters):
            raise ValueError("the three delimiters must be distinct single punctuation "
                             "characters")
        if self.terminator in "\r\n" and self.wrap:
            raise ValueError("lines cannot be wrapped when the line break is the terminator")
        if self.newline not in ("", "\n", "\r\n"):
            raise ValueError("newline must be '', '\\n' or '\\r\\n'")


@dataclass(frozen=True)
class Edi210Spec:
    invoices: int = 10
    groups_per_invoice: int = 3
    charges_per_group: int = 2
    functional_groups: int = 1  # GS groups; invoices are spread over them in order
    seed: int = 0
    scac: str = "HAUL"
    # The bill-to account (N1*BT*25); default ACCT plus the seed. Shipment jobs are keyed by it.
    account: str | None = None
    discount_every: int = 4  # every Nth charge group ends with a DSC discount (0: never)
    bad_amount: frozenset[int] = frozenset()  # invoice indices with a non-numeric L104
    total_mismatch: frozenset[int] = frozenset()  # invoice indices whose B307 is off by 1.00
    negative_charge: frozenset[int] = frozenset()  # a negative non-credit charge (review flag)
    purposes: dict[int, str] = field(default_factory=dict)  # invoice index -> B2A01
    quirks: EdiQuirks = EdiQuirks()


@dataclass
class GeneratedInvoice:
    index: int
    invoice_number: str
    groups: int
    charges: int
    total: Decimal
    needs_review: int
    expected_error: str | None  # the error_type the parser must report, or None


@dataclass
class GenerationReport:
    path: Path | None
    format: str
    invoices: list[GeneratedInvoice]

    @property
    def good(self) -> list[GeneratedInvoice]:
        return [i for i in self.invoices if i.expected_error is None]

    @property
    def bad(self) -> list[GeneratedInvoice]:
        return [i for i in self.invoices if i.expected_error is not None]

    @property
    def charges(self) -> int:
        return sum(i.charges for i in self.good)

    @property
    def groups(self) -> int:
        return sum(i.groups for i in self.good)

    @property
    def total(self) -> Decimal:
        return sum((i.total for i in self.good), _ZERO)


def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)).scaleb(-2)


def _n2(amount: Decimal) -> str:
    return str(int(amount.scaleb(2)))


class _Writer:
    """Writes text to a stream, wrapping it every ``wrap`` characters when asked."""

    def __init__(self, out: IO[str], wrap: int | None, line_break: str) -> None:
        self.out = out
        self.wrap = wrap
        self.line_break = line_break
        self.column = 0

    def write(self, text: str) -> None:
        if not self.wrap:
            self.out.write(text)
            return
        while text:
            room = self.wrap - self.column
            piece, text = text[:room], text[room:]
            self.out.write(piece)
            nl = piece.rfind("\n")
            self.column = len(piece) - nl - 1 if nl >= 0 else self.column + len(piece)
            if self.column >= self.wrap:
                self.out.write(self.line_break)
                self.column = 0


class _Edi:
    def __init__(self, writer: _Writer, q: EdiQuirks) -> None:
        self.w = writer
        self.q = q
        self.count = 0  # segments since ST

    def seg(self, level: int, tag: str, *elements: str) -> None:
        q = self.q
        text = q.element_separator.join((tag, *elements)).rstrip(q.element_separator)
        indent = "  " * level if q.indent else ""
        self.w.write(indent + text + q.terminator + q.newline)
        self.count += 1


def _isa_fields(q: EdiQuirks, control: int, scac: str) -> list[str]:
    raw = ["00", "", "00", "", "ZZ", scac, "ZZ", "HAULRECEIVER", "261125", "0350", "U", "00401",
           str(control), "0", "P"]
    if not q.fixed_isa:
        return raw
    widths = [2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1]
    out = []
    for value, width in zip(raw, widths, strict=True):
        out.append(value.zfill(width) if value.isdigit() and width == 9 else value.ljust(width))
    return out


def write_edi210(target: str | Path | IO[str], spec: Edi210Spec) -> GenerationReport:
    """Write a 210 file as ``spec`` says and report what was written."""
    spec.quirks.check()
    if isinstance(target, str | Path):
        path = Path(target)
        with path.open("w", encoding="utf-8", newline="") as out:
            report = _write_edi210(out, spec)
        report.path = path
        return report
    return _write_edi210(target, spec)


def _write_edi210(out: IO[str], spec: Edi210Spec) -> GenerationReport:
    q = spec.quirks
    rng = random.Random(spec.seed)
    line_break = q.newline or "\n"
    writer = _Writer(out, q.wrap, line_break)
    edi = _Edi(writer, q)
    if q.bom:
        out.write("\ufeff")
    sep = q.element_separator
    isa_control = 1 + spec.seed % 1000
    writer.write(sep.join(("ISA", *_isa_fields(q, isa_control, spec.scac)))
                 + sep + q.sub_element_separator + q.terminator + q.newline)
    report = GenerationReport(path=None, format="edi210", invoices=[])
    groups = max(1, min(spec.functional_groups, max(spec.invoices, 1)))
    per_group = [spec.invoices // groups + (1 if g < spec.invoices % groups else 0)
                 for g in range(groups)]
    index = 0
    for g, count in enumerate(per_group, start=1):
        edi.seg(1, "GS", "IM", spec.scac, "HAULRECEIVER", "20261125", "0350", str(g), "X",
                "004010")
        for st in range(1, count + 1):
            report.invoices.append(_write_invoice(edi, spec, rng, index, f"{st:04d}"))
            index += 1
        edi.seg(1, "GE", str(count), str(g))
    edi.seg(0, "IEA", str(groups), _isa_fields(q, isa_control, spec.scac)[12])
    return report


def _write_invoice(edi: _Edi, spec: Edi210Spec, rng: random.Random, index: int,
                   control: str) -> GeneratedInvoice:
    q = spec.quirks
    number = f"{spec.seed % 100:02d}{index + 1:08d}"
    expected: str | None = None
    if index in spec.bad_amount:
        expected = "ParcelInvalidAmount"
    elif index in spec.total_mismatch:
        expected = "ParcelTotalsMismatch"
    # B307 comes before the lines, so the amounts are drawn twice from their own seeded stream
    # instead of being kept: memory stays bounded for an invoice of any size.
    plan = _ChargePlan(spec, index)
    total = sum(plan.amounts(), _ZERO)
    needs_review = 0

    edi.count = 0
    edi.seg(2, "ST", "210", control)
    b307 = total + Decimal("1.00") if index in spec.total_mismatch else total
    edi.seg(3, "B3", "", number, f"SH{index + 1:07d}", "PP", "L", "20261120", _n2(b307), "",
            "20261122", "035", spec.scac, "20261120")
    purpose = spec.purposes.get(index)
    if purpose:
        edi.seg(3, "B2A", purpose)
    edi.seg(3, "C3", "USD")
    edi.seg(3, "N9", "BM", f"BOL{index + 1:07d}")
    edi.seg(3, "G62", "86", "20261120")
    for role, name, city in (("SH", "HAUL SHIPPER", "DAYTON"), ("CN", "HAUL CONSIGNEE", "AKRON"),
                             ("BT", "HAUL BILLING", "TOLEDO")):
        ident = ("25", spec.account or f"ACCT{spec.seed % 1000:04d}") if role == "BT" else ()
        edi.seg(3, "N1", role, name, *ident)
        edi.seg(4, "N3", "1 MAIN ST")
        edi.seg(4, "N4", city, "OH", "45402", "US")
    it = iter(plan.amounts())
    charge_count = 0
    for g in range(spec.groups_per_invoice):
        edi.seg(3, "LX", str(g + 1))
        edi.seg(4, "L5", str(g + 1), "PARCEL FREIGHT")
        edi.seg(4, "L0", str(g + 1), "", "", str(rng.randint(1, 150)), "G", "", "", "1", "PCS")
        for c in range(plan.charges_in_group(g)):
            amount = next(it)
            charge_count += 1
            code, desc = plan.code(g, c)
            l104 = _n2(amount)
            if index in spec.bad_amount and g == 0 and c == 0:
                l104 = l104[:1] + "X" + l104[1:]
            if amount < 0 and code != "DSC":
                needs_review += 1
            rate = "" if q.terminator == "." else f"{rng.randint(100, 9999) / 100:.2f}"
            edi.seg(4, "L1", str(g + 1), rate, "FR" if rate else "", l104, "", "", "", code,
                    "", "", "", desc)
    edi.seg(3, "L3", str(spec.groups_per_invoice * 10), "G", "", "", _n2(total))
    edi.seg(2, "SE", str(edi.count + 1), control)
    return GeneratedInvoice(index=index, invoice_number=number, groups=spec.groups_per_invoice,
                            charges=charge_count, total=total, needs_review=needs_review,
                            expected_error=expected)


class _ChargePlan:
    """The charges of one invoice, drawn from the shared random stream in a fixed order."""

    def __init__(self, spec: Edi210Spec, index: int) -> None:
        self.spec = spec
        self.index = index

    def has_discount(self, g: int) -> bool:
        every = self.spec.discount_every
        return bool(every) and (g + 1) % every == 0

    def charges_in_group(self, g: int) -> int:
        return self.spec.charges_per_group + (1 if self.has_discount(g) else 0)

    def code(self, g: int, c: int) -> tuple[str, str]:
        if self.has_discount(g) and c == self.spec.charges_per_group:
            return "DSC", "DISCOUNT"
        return _EDI_CHARGE_CODES[(g + c) % len(_EDI_CHARGE_CODES)]

    def amounts(self) -> Iterator[Decimal]:
        rng = random.Random(self.spec.seed * 1_000_003 + self.index)
        for g in range(self.spec.groups_per_invoice):
            group_total = _ZERO
            for c in range(self.charges_in_group(g)):
                if self.has_discount(g) and c == self.spec.charges_per_group:
                    amount = -(group_total / 10).quantize(Decimal("0.01"))
                elif self.index in self.spec.negative_charge and g == 0 and c == 0:
                    amount = -_cents(rng, 100, 5000)
                else:
                    amount = _cents(rng, 100, 50000)
                group_total += amount
                yield amount
