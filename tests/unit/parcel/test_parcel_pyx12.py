"""Cross-check: a normalized copy of a file, as our tokenizer reads it, satisfies pyx12.

pyx12's reader cannot read the real files themselves (BOM, indentation, short ISA), so the copy
is rewritten with a fixed-width ISA and '~' terminators; pyx12 must then see the same segments
and report no envelope errors.
"""

from __future__ import annotations

import io

import pytest
from parcel_helpers import ALL_QUIRKS, tokenize

from app.formats.generator import Edi210Spec, write_edi210
from app.formats.x12 import Segment
from tests.parcel_expected import shared_samples

try:
    from pyx12 import x12file as pyx12_file
except ImportError as exc:  # a missing test dependency fails the run, it never skips
    raise ImportError(
        "the pyx12 cross-check needs the package 'pyx12' (pinned in pyproject.toml): "
        "install the project's dependencies into the test environment"
    ) from exc

_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1)


def _normalized(segments: list[Segment]) -> str:
    out = []
    for seg in segments:
        if seg.tag == "ISA":
            fields = [e.zfill(w) if i == 12 else e.ljust(w)
                      for i, (e, w) in enumerate(zip(seg.elements, _ISA_WIDTHS, strict=False))]
            out.append("*".join(["ISA", *fields, seg[16]]))
        elif seg.tag == "IEA":
            out.append(f"IEA*{seg[1]}*{seg[2].zfill(9)}")
        else:
            out.append("*".join([seg.tag, *seg.elements]))
    return "~".join(out) + "~"


def _cross_check(segments: list[Segment]) -> None:
    reader = pyx12_file.X12Reader(io.StringIO(_normalized(segments)))
    theirs = [(s.get_seg_id(), s.format()) for s in reader]
    assert reader.pop_errors() == []
    assert [t for t, _ in theirs] == [s.tag for s in segments]
    ours = _normalized(segments).split("~")[1:-1]
    assert [f.rstrip("~") for _, f in theirs][1:] == ours


def test_generated_quirky_file() -> None:
    buf = io.StringIO()
    write_edi210(buf, Edi210Spec(invoices=3, functional_groups=2, quirks=ALL_QUIRKS))
    _cross_check(list(tokenize(buf.getvalue())))


@pytest.mark.parametrize("name", ["indice-co_EDI.Net_210-MGCTLYST-SAMPLE.EDI",
                                  "Inteligenz_X12Parser_CN_FreightInvoiceSample1.txt"])
def test_real_files(name: str) -> None:
    _cross_check(list(tokenize((shared_samples() / name).read_bytes())))
