"""A long charge group streams: its charges leave the parser in chunks as they are read, so one
group of 100,000 charges (five times the old cap) parses in bounded memory, and what a group
needs at its end (its totals, its review flags, its own fields) comes out as if the group had
been held whole.

Memory is a tracemalloc peak (a bound on allocations, not a timing). Expectations come from the
generator's report or from tables the tests build themselves, never from haul's parser.
"""

from __future__ import annotations

import csv
import io
import tracemalloc
from decimal import Decimal
from pathlib import Path

from parcel_helpers import interchange, invoice_body, transaction_set

from app.domains.parcel.models import ParserSettings
from app.domains.rate_audit.rates import (
    MAX_CHARGE_REASONS,
    AuditCharge,
    AuditGroup,
    ContractRate,
    audit_group,
)
from app.formats import csv_layouts as L
from app.formats.csv_parse import iter_csv_events
from app.formats.edi210 import Edi210Parser
from app.formats.files import parse_file
from app.formats.generator import Edi210Spec, EdiQuirks, write_edi210
from app.formats.invoice import (
    CHARGE_CHUNK,
    ChargeGroupParsed,
    ChargesParsed,
    Invoice,
    InvoiceFailed,
    InvoiceFailure,
    InvoiceFinished,
    ParseLimits,
    collect_invoices,
)

MIB = 1 << 20


def test_a_100k_charge_group_parses_in_bounded_memory(tmp_path: Path) -> None:
    """100,000 rather than more: tracemalloc slows parsing several times over, and the bound
    already separates streaming (a few MiB) from a group held whole (tens of MiB)."""
    path = tmp_path / "one-group.edi"
    report = write_edi210(path, Edi210Spec(
        invoices=1, groups_per_invoice=1, charges_per_group=100_000, discount_every=0,
        negative_charge=frozenset({0}), quirks=EdiQuirks(newline="\r\n"),
    ))
    [expected] = report.invoices
    # a cap far above the group, so only memory (not the guard) can stop the parse
    limits = ParseLimits(max_charges_per_group=1_000_000)
    charges = chunks = 0
    summary = None
    tracemalloc.start()
    try:
        for event in parse_file(path, limits=limits):
            if isinstance(event, ChargesParsed):
                chunks += 1
                charges += len(event.chunk.charges)
            elif isinstance(event, ChargeGroupParsed):
                charges += len(event.group.charges)
            elif isinstance(event, InvoiceFinished):
                summary = event.summary
            elif isinstance(event, InvoiceFailed):
                raise AssertionError(event.failure)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary is not None and chunks >= 99
    assert charges == summary.charge_count == expected.charges == 100_000
    assert summary.group_count == 1 and summary.charges_total == expected.total
    assert summary.needs_review_count == expected.needs_review == 1
    # held whole, 100,000 parsed charges cost over 60 MiB
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB"


def _l1(amount: int, code: str) -> str:
    return f"L1*1***{amount}****{code}"


def test_chunked_groups_carry_what_the_whole_group_had() -> None:
    """Groups longer than a chunk, exactly a chunk and short, with review flags in the middle of
    chunks and fields that follow the charges: the table below is the expectation."""
    # (amount in cents, code, needs review) per charge, per group
    table: list[list[tuple[int, str, bool]]] = [
        [(-150 if n in (7, 1_500) else (-90 if n == 2_400 else 100 + n % 7),
          "DSC" if n == 2_400 else "400", n in (7, 1_500)) for n in range(2_500)],
        [(200, "FUE", False), (-300, "RES", True), (400, "400", False)],
        [(50, "400", False) for _ in range(CHARGE_CHUNK)],
    ]
    lines: list[str] = []
    for g, charges in enumerate(table, start=1):
        lines += [f"LX*{g}", f"L0*{g}***12*G***1*PCS"]
        lines += [_l1(amount, code) for amount, code, _ in charges]
        lines.append(f"N9*PO*PO-{g}")  # a group's own field, after its charges
    total = sum(amount for charges in table for amount, _, _ in charges)
    text = interchange([[transaction_set(invoice_body(
        b307=str(total), l305=str(total), lines=lines))]])
    events = list(Edi210Parser(text).events())
    [invoice] = collect_invoices(events)
    assert isinstance(invoice, Invoice)
    # it streamed: two chunks of the first group, one of the third, none of the short one
    assert [e.chunk.sequence for e in events if isinstance(e, ChargesParsed)] == [1, 1, 3]
    for group, charges in zip(invoice.charge_groups, table, strict=True):
        assert [(int(c.amount * 100), c.code, c.needs_review) for c in group.charges] == charges
        assert [r.value for r in group.references] == [f"PO-{group.sequence}"]
        assert group.weight == Decimal("12")
        for c in group.charges:
            assert (str(c.amount) in c.review_reason) == c.needs_review
    summary = invoice.summary
    assert summary.charges_total == Decimal(total).scaleb(-2)
    assert summary.charge_count == sum(map(len, table)) and summary.group_count == 3
    assert summary.needs_review_count == sum(r for charges in table for _, _, r in charges) == 3


def test_a_ups_shipment_of_many_rows_streams_and_adds_up() -> None:
    rows = []
    amounts = [Decimal(100 + n % 13).scaleb(-2) for n in range(2_300)]
    for amount in amounts:
        row = [""] * L.UPS_COLUMN_COUNT
        for name, value in (("account_number", "A1"), ("invoice_number", "INV1"),
                            ("invoice_date", "2026-11-20"),
                            ("invoice_amount", str(sum(amounts))), ("tracking_number", "1Z1"),
                            ("charge_classification_code", "FRT"),
                            ("charge_category_code", "SHP"), ("net_amount", str(amount))):
            row[L.UPS_COLUMNS[name] - 1] = value
        rows.append(row)
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    events = list(iter_csv_events(out.getvalue(), "ups"))
    assert sum(isinstance(e, ChargesParsed) for e in events) == 2
    [invoice] = collect_invoices(events)
    assert isinstance(invoice, Invoice)
    [group] = invoice.charge_groups
    assert [c.amount for c in group.charges] == amounts
    assert invoice.summary.charges_total == sum(amounts)


def test_the_cap_refuses_a_group_past_it_after_chunks_went_out() -> None:
    lines = ["LX*1", *(_l1(100, "400") for _ in range(2_501))]
    text = interchange([[transaction_set(invoice_body(b307="250100", l305=None,
                                                      lines=lines))]])
    events = list(Edi210Parser(text, limits=ParseLimits(max_charges_per_group=2_500)).events())
    assert sum(isinstance(e, ChargesParsed) for e in events) == 2
    [failure] = collect_invoices(events)
    assert isinstance(failure, InvoiceFailure)
    assert "more than 2,500 L1 charges" in failure.message
    assert "HAUL_PARCEL_MAX_CHARGES_PER_GROUP" in failure.message


def test_the_cap_defaults_to_a_million_now_that_memory_does_not_grow_with_it() -> None:
    assert ParseLimits().max_charges_per_group == 1_000_000
    assert ParserSettings().limits().max_charges_per_group == 1_000_000


def test_the_audit_folds_a_long_group_and_keeps_a_bounded_list_of_reasons() -> None:
    """The audit reads a group's charges one row at a time: it keeps running figures and at
    most MAX_CHARGE_REASONS reasons of each kind, with the rest counted."""
    group = AuditGroup(1, "HAUL", "", "", Decimal("10"), "USD")
    billed = Decimal(0)
    for n in range(100_000):
        amount = Decimal(-1 if n % 2 else 2)
        code = "400" if n % 4 == 0 else "RES"
        group.add(AuditCharge(code, amount, needs_review=n == 3, review_reason="parser: n=3"
                              if n == 3 else ""))
        billed += amount if code == "400" else 0
    assert group.charges == [] and len(group.negative) == MAX_CHARGE_REASONS
    finding = audit_group(group, [ContractRate("HAUL", "", "", Decimal(0), Decimal("1"),
                                               Decimal(0))])
    assert finding.billed == billed == Decimal(50_000)
    # 50,000 odd charges are negative: one flagged by the parser, the rest negative non-credit
    assert finding.reasons[0] == "parser: n=3"
    assert finding.reasons[1:MAX_CHARGE_REASONS + 1] == tuple(
        "negative amount -1 on non-credit charge RES" for _ in range(MAX_CHARGE_REASONS))
    assert finding.reasons[MAX_CHARGE_REASONS + 1] == (
        f"and {49_999 - MAX_CHARGE_REASONS:,} more negative non-credit charges")
    assert "contract says 10.00" in finding.reasons[-1]
