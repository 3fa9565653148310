"""How the splitter packs a page into children, and how a run's audit is cut into batches."""

from __future__ import annotations

import pytest

from app.domains.parcel.models import PageEntry, next_slot
from app.domains.rate_audit.activities import _event_rows
from app.domains.rate_audit.models import AuditSlice, JobEvent, slice_batches


def page(*charges: int, first: int = 0, bad: frozenset[int] = frozenset()) -> list[PageEntry]:
    return [PageEntry(i=first + n, n=f"INV{first + n}", c=c, bad=first + n in bad)
            for n, c in enumerate(charges)]


def slots(entries: list[PageEntry], budget: int, per_run: int) -> list[tuple[int, int, bool]]:
    """Every slot of a page, as the splitter walks it."""
    out, offset = [], 0
    while offset < len(entries):
        slot = next_slot(entries, offset, budget, per_run)
        assert slot.count >= 1
        out.append((slot.first, slot.count, slot.alone))
        offset += slot.count
    return out


def test_small_invoices_pack_up_to_the_charge_budget() -> None:
    assert slots(page(10, 10, 10, 10, 10), budget=30, per_run=100) == [
        (0, 3, False), (3, 2, False)]


def test_a_run_holds_at_most_per_run_invoices() -> None:
    assert slots(page(*[1] * 7, first=100), budget=1_000, per_run=3) == [
        (100, 3, False), (103, 3, False), (106, 1, False)]


def test_a_large_invoice_keeps_its_own_child_and_splits_the_runs_around_it() -> None:
    assert slots(page(5, 5, 50, 5), budget=50, per_run=100) == [
        (0, 2, False), (2, 1, True), (3, 1, False)]


def test_an_invoice_over_the_remaining_budget_starts_the_next_run() -> None:
    assert slots(page(20, 20, 20), budget=45, per_run=100) == [(0, 2, False), (2, 1, False)]


def test_invoices_the_parser_failed_ride_in_runs_even_when_they_look_large() -> None:
    entries = page(5, 0, 5, first=10, bad=frozenset({11}))
    entries[1].c = 10_000  # a bad entry's count never sends it to a child of its own
    assert slots(entries, budget=50, per_run=100) == [(10, 3, False)]


def test_a_gap_in_the_indices_ends_a_run() -> None:
    entries = page(1, 1) + page(1, first=5)
    assert slots(entries, budget=100, per_run=100) == [(0, 2, False), (5, 1, False)]


@pytest.mark.parametrize(("groups", "batch", "expected"), [
    ([(1, 1)] * 3, 10, 1),
    ([(1, 4), (2, 4), (3, 4)], 3, 4),
    ([(1, 1000)], 1000, 1),
    ([(1, 1001)], 1000, 2),
    ([], 5, 0),
])
def test_a_runs_audit_takes_ceil_groups_over_batch_activities(
    groups: list[tuple[int, int]], batch: int, expected: int
) -> None:
    batches = slice_batches(groups, batch)
    assert len(batches) == expected
    assert all(sum(s.last - s.first + 1 for s in b) <= batch for b in batches)
    covered = [(s.r, g) for b in batches for s in b for g in range(s.first, s.last + 1)]
    assert covered == [(r, g) for r, n in groups for g in range(1, n + 1)]


def test_a_revision_is_split_where_a_batch_ends() -> None:
    assert slice_batches([(7, 2), (8, 3)], 3) == [
        [AuditSlice(r=7, first=1, last=2), AuditSlice(r=8, first=1, last=1)],
        [AuditSlice(r=8, first=2, last=3)],
    ]


def test_a_coalesced_revisions_event_is_recorded_as_one_event_per_revision() -> None:
    rows = _event_rows([
        JobEvent(event_id="revisions:abc:0+3:J", kind="invoice_revisions",
                 payload={"revision_ids": [4, 5]}),
        JobEvent(event_id="pay-1", kind="payment", payload={"amount": "1.00"}),
    ])
    assert rows == [
        ("revision:4", "invoice_revision", {"revision_id": 4}),
        ("revision:5", "invoice_revision", {"revision_id": 5}),
        ("pay-1", "payment", {"amount": "1.00"}),
    ]
