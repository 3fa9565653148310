"""Helpers of the parcel tests: builders for hand-written X12 (counts always right unless
asked), whole invoices from each parser, and the generator settings only tests use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from csv_generator import CsvSpec, write_fedex_csv, write_ups_csv

from app.formats.csv_parse import iter_csv_events
from app.formats.edi210 import Edi210Parser
from app.formats.files import FileSource, parse_file
from app.formats.generator import Edi210Spec, EdiQuirks, GenerationReport, write_edi210
from app.formats.invoice import InvoiceResult, collect_invoices
from app.formats.x12 import CHUNK_SIZE, Segment, SegmentReader, Source

# every layout quirk real 210 files have, at once
ALL_QUIRKS = EdiQuirks(bom=True, newline="\r\n", indent=True, wrap=40, terminator=".",
                       fixed_isa=False)


def transaction_set(body: list[str], control: str = "0001", code: str = "210",
                    se_count: int | None = None, se_control: str | None = None) -> list[str]:
    count = len(body) + 2 if se_count is None else se_count
    return [f"ST*{code}*{control}", *body, f"SE*{count}*{se_control or control}"]


def interchange(groups: list[list[list[str]]], *, isa_control: str = "000000905",
                iea_control: str | None = None, iea_count: int | None = None,
                ge_counts: list[int] | None = None, ge_controls: list[str] | None = None,
                terminator: str = "~", trailer: bool = True) -> str:
    isa = ("ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261125*0350*U"
           f"*00401*{isa_control}*0*T*>")
    segments = [isa]
    for g, sets in enumerate(groups, start=1):
        segments.append(f"GS*IM*SENDER*RECEIVER*20261125*0350*{g}*X*004010")
        for ts in sets:
            segments.extend(ts)
        count = len(sets) if ge_counts is None else ge_counts[g - 1]
        control = str(g) if ge_controls is None else ge_controls[g - 1]
        segments.append(f"GE*{count}*{control}")
    if trailer:
        segments.append(f"IEA*{len(groups) if iea_count is None else iea_count}*"
                        f"{iea_control or isa_control}")
    return terminator.join(segments) + terminator


def invoice_body(number: str = "INV1", b307: str = "15000", l305: str | None = "15000",
                 lines: list[str] | None = None,
                 extra_header: list[str] | None = None) -> list[str]:
    lines = lines if lines is not None else [
        "LX*1", "L5*1*BOXES", "L0*1***120*G***2*PCS", "L1*1*10.00*FR*10000****400****LINEHAUL",
        "LX*2", "L1*2***5000****FUE****FUEL",
    ]
    body = [f"B3**{number}*SHIP9*PP**20261120*{b307}**20261122*035*ABCD*20261120",
            *(extra_header or []), "C3*CAD", "N9*BM*BOL77",
            "G62*86*20261120", "N1*BT*BILL TO CO*25*ACCT42", "N3*1 MAIN ST",
            "N4*DAYTON*OH*45402*US", "N1*SH*SHIPPER", *lines]
    if l305 is not None:
        body.append(f"L3*120*G***{l305}")
    return body


# --------------------------------------------------------------------------------------------
# whole invoices and segments, for tests that hold a file's text rather than the file
# --------------------------------------------------------------------------------------------


def iter_file_invoices(source: FileSource, *, carrier: str | None = None,
                       strict_envelope: bool = True) -> Iterator[InvoiceResult]:
    """Whole invoices (or failures) of a file of any known format, through ``parse_file``."""
    return collect_invoices(parse_file(source, carrier=carrier, strict_envelope=strict_envelope))


def iter_edi210_invoices(source: Source | Any, *, strict_envelope: bool = True
                         ) -> Iterator[InvoiceResult]:
    """Whole invoices of X12 210 text, with no format detection in front."""
    return collect_invoices(Edi210Parser(source, strict_envelope=strict_envelope).events())


def iter_csv_invoices(source: Source | Any, carrier: str) -> Iterator[InvoiceResult]:
    """Whole invoices of carrier CSV text in the layout of ``carrier``."""
    return collect_invoices(iter_csv_events(source, carrier))


def tokenize(source: Source | Any, *, chunk_size: int = CHUNK_SIZE) -> Iterator[Segment]:
    """The segments of X12 text, with no envelope checks."""
    return iter(SegmentReader(source, chunk_size=chunk_size))


# --------------------------------------------------------------------------------------------
# generator settings
# --------------------------------------------------------------------------------------------


def sized_spec(invoices: int, charges_per_invoice: int, *, charges_per_group: int = 4,
               **options: Any) -> Edi210Spec:
    """A spec with exactly ``charges_per_invoice`` charges in each invoice (no discount
    lines), in groups of ``charges_per_group`` when that divides evenly, else one each."""
    if charges_per_invoice < 1:
        raise ValueError("an invoice needs at least one charge")
    per_group = charges_per_group if charges_per_invoice % charges_per_group == 0 else 1
    return Edi210Spec(invoices=invoices, groups_per_invoice=charges_per_invoice // per_group,
                      charges_per_group=per_group, discount_every=0, **options)


def write_samples(directory: str | Path) -> list[GenerationReport]:
    """The committed sample files (app/formats/samples): a quirky multi-group 210, a UPS CSV
    and a FedEx CSV."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_edi210(folder / "edi210_sample.edi", Edi210Spec(
            invoices=4, groups_per_invoice=3, charges_per_group=2, functional_groups=2, seed=7,
            purposes={2: "04"},
            quirks=EdiQuirks(bom=True, newline="\r\n", indent=True, fixed_isa=False),
        )),
        write_ups_csv(folder / "ups_billing_sample.csv",
                      CsvSpec(invoices=3, shipments_per_invoice=3, charges_per_shipment=3,
                              seed=7, credit_every=2)),
        write_fedex_csv(folder / "fedex_billing_sample.csv",
                        CsvSpec(invoices=3, shipments_per_invoice=3, charges_per_shipment=2,
                                seed=7, credit_every=2)),
    ]
