"""Pure logic of the parcel pipeline: contract-rate lookup and audit, batch ranges, settings,
the local blob store, and the indexer's per-invoice blobs (no servers)."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.core.blobstore import BlobNotFoundError, LocalBlobStore, open_store
from app.domains.parcel.activities import _Indexer, read_invoice_blob
from app.domains.parcel.models import (
    IndexInput,
    PageEntry,
    PipelineSettings,
    audit_batches,
    batch_ranges,
    invoice_blob_key,
    page_blob_key,
)
from app.domains.rate_audit.rates import (
    AuditCharge,
    AuditGroup,
    ContractRate,
    audit_group,
    find_rate,
    sample_contracts,
)
from app.formats.files import parse_file
from app.formats.generator import Edi210Spec, write_edi210
from app.formats.invoice import InvoiceFailure, InvoiceHeader

D = Decimal


def rate(service: str = "", zone: str = "", brk: str = "0", per: str = "1.00",
         minimum: str = "0") -> ContractRate:
    return ContractRate("UPSN", service, zone, D(brk), D(per), D(minimum))


def test_the_most_specific_rate_and_highest_weight_break_win() -> None:
    rates = [rate(per="1.00"), rate(zone="002", per="0.90"), rate(brk="50", per="0.80"),
             rate(service="Ground", zone="002", per="0.70"), rate(zone="008", per="2.00")]
    assert find_rate(rates, "Ground", "002", D(10)).rate_per_unit == D("0.70")  # type: ignore[union-attr]
    assert find_rate(rates, "Air", "002", D(10)).rate_per_unit == D("0.90")  # type: ignore[union-attr]
    assert find_rate(rates, "Air", "005", D(60)).rate_per_unit == D("0.80")  # type: ignore[union-attr]
    assert find_rate(rates, "Air", "005", D(10)).rate_per_unit == D("1.00")  # type: ignore[union-attr]
    assert find_rate([rate(brk="5")], "", "", D(1)) is None


def group(*charges: AuditCharge, weight: str | None = "10") -> AuditGroup:
    return AuditGroup(7, "UPSN", "", "", D(weight) if weight else None, "USD", list(charges))


def test_audit_flags_overbilling_beyond_tolerance_and_passes_the_rest() -> None:
    rates = [rate(per="1.00", minimum="5.00")]
    ok = audit_group(group(AuditCharge("FRT", D("10.05")), AuditCharge("FSC", D("3"))), rates)
    assert ok.expected == D("10.00") and ok.billed == D("10.05") and not ok.discrepancy
    over = audit_group(group(AuditCharge("FRT", D("10.20"))), rates)
    assert over.discrepancy and over.difference == D("0.20")
    assert "contract says 10.00" in over.reasons[0]
    minimum = audit_group(group(AuditCharge("FRT", D("5.00")), weight="1"), rates)
    assert minimum.expected == D("5.00") and not minimum.discrepancy


def test_negative_amounts_are_flagged_unless_the_charge_is_a_credit() -> None:
    rates = [rate()]
    credit = audit_group(group(AuditCharge("FRT", D(10)), AuditCharge("DSC", D(-2), True)), rates)
    assert not credit.discrepancy
    negative = audit_group(group(AuditCharge("FRT", D(10)), AuditCharge("RES", D(-2))), rates)
    assert negative.discrepancy and "negative amount -2 on non-credit charge RES" in \
        negative.reasons[0]
    flagged = audit_group(group(AuditCharge("RES", D(-2), needs_review=True,
                                            review_reason="parser says so")), rates)
    assert flagged.reasons == ("parser says so",)


def test_missing_contract_or_weight_is_a_discrepancy_with_its_reason() -> None:
    assert audit_group(group(AuditCharge("FRT", D(1))), []).reasons == (
        "no contract rates for carrier 'UPSN'",)
    assert "no weight" in audit_group(group(AuditCharge("FRT", D(1)), weight=None),
                                      [rate()]).reasons[0]
    # a group without a base-freight charge has nothing to rate
    assert not audit_group(group(AuditCharge("FSC", D(1))), []).discrepancy


def test_sample_contracts_cover_the_sample_carriers() -> None:
    carriers = {r.carrier for r in sample_contracts()}
    assert {"HAUL", "UPSN", "FDEN", "FDEG"} <= carriers


@pytest.mark.parametrize(("groups", "size"), [(0, 3), (1, 3), (3, 3), (10, 3), (10_000, 500)])
def test_batch_ranges_cover_every_group_once(groups: int, size: int) -> None:
    ranges = batch_ranges(groups, size)
    assert len(ranges) == audit_batches(groups, size)
    covered = [s for first, last in ranges for s in range(first, last + 1)]
    assert covered == list(range(1, groups + 1))
    assert all(last - first + 1 <= size for first, last in ranges)


def test_concurrency_is_capped_below_the_pending_children_limit() -> None:
    assert PipelineSettings(max_concurrency=1000).max_concurrency == 1000
    with pytest.raises(ValidationError):
        PipelineSettings(max_concurrency=1001)


def test_local_blob_store_is_atomic_and_refuses_escaping_keys(tmp_path: Path) -> None:
    store = open_store(str(tmp_path))
    assert isinstance(store, LocalBlobStore)
    store.put("a/b", b"x")
    assert store.get("a/b") == b"x" and store.exists("a/b")
    with pytest.raises(RuntimeError), store.writer("a/c") as out:
        out.write(b"half")
        raise RuntimeError("the writer died")
    assert not store.exists("a/c")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b"]  # no temporary left behind
    with pytest.raises(BlobNotFoundError):
        store.get("a/c")
    for bad in ("../x", "/abs", "a//b", "a/./b"):
        with pytest.raises(ValueError):
            store.put(bad, b"")
    with pytest.raises(ValueError):
        open_store("")


def test_indexer_writes_one_blob_per_invoice_and_pages_of_entries(tmp_path: Path) -> None:
    spec = Edi210Spec(invoices=7, groups_per_invoice=3, charges_per_group=2, seed=5,
                      bad_amount=frozenset({2}), total_mismatch=frozenset({5}))
    text = io.StringIO()
    report = write_edi210(text, spec)
    store = LocalBlobStore(tmp_path)
    beats: list[int] = []
    indexer = _Indexer(store, IndexInput(content_hash="h", workflow_id="w", page_size=3),
                       beats.append)
    indexer.run(parse_file(text.getvalue().encode()))
    assert (indexer.invoices, indexer.pages, indexer.failures) == (7, 3, 2)
    assert indexer.charges == report.charges and indexer.groups == report.groups
    entries = [PageEntry.model_validate(e) for p in range(3)
               for e in json.loads(store.get(page_blob_key("h", p)))]
    assert [e.i for e in entries] == list(range(7))
    assert [e.i for e in entries if e.bad] == [2, 5]
    for inv in report.invoices:
        with store.reader(invoice_blob_key("h", inv.index)) as stream:
            head, groups, summary = read_invoice_blob(stream)
            if inv.expected_error:
                assert isinstance(head, InvoiceFailure)
                assert head.error_type == inv.expected_error
                continue
            assert isinstance(head, InvoiceHeader) and head.invoice_number == inv.invoice_number
            read = list(groups)
        assert [g.sequence for g in read] == list(range(1, spec.groups_per_invoice + 1))
        assert sum(g.total for g in read) == inv.total == summary[0].charges_total
