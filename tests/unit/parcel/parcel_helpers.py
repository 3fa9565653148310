"""Small builders for hand-written X12 in the parcel tests (counts always right unless asked)."""

from __future__ import annotations


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
