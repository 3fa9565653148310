"""Every real public 210 file in ../shared/samples/edi210 parses, and its totals check.

The files are read in place (never copied into the project). Two of them have envelope counts
that do not match their contents; those are parsed with ``strict_envelope=False`` and the exact
mismatches are asserted, so the leniency is visible, and strict parsing is shown to reject them.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from parcel_helpers import iter_edi210_invoices

from app.formats.edi210 import Edi210Parser
from app.formats.invoice import Invoice, collect_invoices
from app.formats.x12 import NotX12Error, X12EnvelopeError
from tests.parcel_expected import ENVELOPE_ISSUES, REAL, SHARED_SAMPLES, shared_samples

SAMPLES = SHARED_SAMPLES
# file -> (invoices, charge groups per invoice, charges per invoice, total per invoice)
EXPECTED = {name: (len(figs), *figs[0][1:]) for name, figs in REAL.items()}


@pytest.fixture(autouse=True)
def _samples_present() -> None:
    """A missing folder fails every test here; a skip would pass the tier without them."""
    shared_samples()


def _source(path: Path) -> str | bytes:
    if path.suffix == ".json":
        return json.loads(path.read_text(encoding="utf-8"))["data"]
    return path.read_bytes()


def test_every_file_in_the_folder_is_covered() -> None:
    files = {p.name for p in SAMPLES.iterdir() if p.name != "PROVENANCE.md"}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file_parses_and_totals_check(name: str) -> None:
    invoices, groups, charges, total = EXPECTED[name]
    issues = ENVELOPE_ISSUES.get(name, [])
    parser = Edi210Parser(_source(SAMPLES / name), strict_envelope=not issues)
    results = list(collect_invoices(parser.events()))
    assert [(i.segment, i.position) for i in parser.reader.issues] == issues
    assert len(results) == invoices
    for inv in results:
        assert isinstance(inv, Invoice), inv
        s = inv.summary
        assert (s.group_count, s.charge_count) == (groups, charges)
        assert s.charges_total == total == s.net_amount_due
        assert s.declared_total == total  # every real file carries L3 with L305
        assert sum(c.amount for g in inv.charge_groups for c in g.charges) == total


@pytest.mark.parametrize("name", sorted(ENVELOPE_ISSUES))
def test_strict_envelope_rejects_the_files_with_wrong_counts(name: str) -> None:
    with pytest.raises(X12EnvelopeError) as err:
        list(iter_edi210_invoices(_source(SAMPLES / name)))
    first = ENVELOPE_ISSUES[name][0]
    assert (err.value.segment, err.value.position) == first


def test_real_file_details() -> None:
    [inv] = iter_edi210_invoices(_source(SAMPLES / "indice-co_EDI.Net_210-MGCTLYST-SAMPLE.EDI"))
    assert isinstance(inv, Invoice)
    discount = inv.charge_groups[3].charges[0]
    assert (discount.code, discount.amount, discount.is_credit, discount.needs_review) == (
        "DSC", Decimal("-3017.91"), True, False)
    name = "Inteligenz_X12Parser_DBSchenker_SampleMotorFreightDetailsAndInvoice.txt"
    [inv] = iter_edi210_invoices(_source(SAMPLES / name), strict_envelope=False)
    assert isinstance(inv, Invoice)
    assert inv.header.scac == "SIFF" and inv.header.purpose_code == "00"
    assert inv.charge_groups[0].charges[1].description == "FUEL SURCHARGE"
    assert inv.header.account == "152596"  # N9*IT inside the bill-to loop


def test_the_json_wrapper_itself_is_rejected_as_not_edi() -> None:
    raw = (SAMPLES / "Stedi-Demos_bootstrap-archived_multi-gs-multi-txn-multi-lx.json").read_bytes()
    with pytest.raises(NotX12Error, match="JSON"):
        list(iter_edi210_invoices(raw))
