"""Our X12 tokenizer and envelope reader.

Real carrier files are not what pyx12's reader expects (a fixed 106-character ISA, no BOM, no
indentation), so haul reads X12 itself. The tokenizer normalizes as it streams: it drops a BOM,
CR and LF, and whitespace between segments, which also rejoins lines wrapped mid-segment. It takes
the element separator from the 4th character of the ISA, finds ISA16 by counting 16 element
separators (never by fixed offsets), and takes the segment terminator from the character after
ISA16. When that character is a line break, line breaks are the terminator instead.

The envelope reader checks ISA/IEA, GS/GE and ST/SE counts and control numbers, and hands out
one transaction set at a time whose body is itself a generator, so memory stays bounded however
many segments a transaction set holds.
"""

from __future__ import annotations

import codecs
import functools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from app.formats.invoice import EmptyFileError, ParcelInputError, control_character

CHUNK_SIZE = 1 << 16
MAX_SEGMENT = 1 << 20  # no real segment comes near this; keeps memory bounded on bad input
_MAX_ISA_SCAN = 1 << 14  # an ISA longer than this is not an ISA
_LINE_BREAKS = "\r\n"

Source = str | bytes | IO[str] | IO[bytes] | Iterable[str] | Iterable[bytes]


class X12Error(ParcelInputError):
    """The file is not valid X12. ``position`` is the 1-based index of the segment in the file
    (the ISA is segment 1)."""

    error_type = "X12Error"

    def __init__(
        self, message: str, *, segment: str | None = None, position: int | None = None
    ) -> None:
        super().__init__(message)
        self.segment = segment
        self.position = position

    def details(self) -> dict[str, object]:
        return {**super().details(), "segment": self.segment, "position": self.position}


class NotX12Error(X12Error):
    """The input is not X12 at all (JSON, CSV, a PDF ...)."""

    error_type = "X12NotEdi"


class X12SyntaxError(X12Error):
    error_type = "X12Syntax"


class X12EnvelopeError(X12Error):
    """Wrong counts, mismatched control numbers, or a missing trailer."""

    error_type = "X12Envelope"


@dataclass(frozen=True, slots=True)
class Delimiters:
    element: str
    sub_element: str
    segment: str  # "\n" means "any line break"
    repetition: str | None = None


class Segment:
    """One segment. ``seg[1]`` is the first data element (XX01); a missing element is ''."""

    __slots__ = ("tag", "elements", "position")

    def __init__(self, tag: str, elements: list[str], position: int) -> None:
        self.tag = tag
        self.elements = elements
        self.position = position

    def __getitem__(self, n: int) -> str:
        if n < 1:
            raise IndexError("X12 elements are numbered from 1")
        return self.elements[n - 1] if n <= len(self.elements) else ""

    def __len__(self) -> int:
        return len(self.elements)

    def __repr__(self) -> str:
        return f"Segment({self.tag!r}, {self.elements!r}, position={self.position})"

    def ref(self, n: int) -> str:
        """The element's name in X12 notation, e.g. B307."""
        return f"{self.tag}{n:02d}"


# --------------------------------------------------------------------------------------------
# text chunks
# --------------------------------------------------------------------------------------------


def iter_text_chunks(source: Source | Any, chunk_size: int = CHUNK_SIZE) -> Iterator[str]:
    """Text chunks from a str, bytes, file object (text or binary), or an iterable of either.
    Bytes are decoded as UTF-8; bytes that are not UTF-8 become U+FFFD, never an exception
    halfway through a file."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def text_of(part: str | bytes | bytearray | memoryview) -> str:
        if isinstance(part, str):
            return part
        return decoder.decode(bytes(part))

    if isinstance(source, str | bytes | bytearray | memoryview):
        yield text_of(source)
    elif hasattr(source, "read"):
        while True:
            part = source.read(chunk_size)
            if not part:
                break
            yield text_of(part)
    else:
        for part in source:
            yield text_of(part)
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _bad_tag(tag: str) -> bool:
    return not (2 <= len(tag) <= 3 and tag.isascii() and tag.isalnum() and tag == tag.upper())


class SegmentReader:
    """Streams the segments of an X12 file. ``delimiters`` is set once the ISA is read."""

    def __init__(self, source: Source | Any, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._chunks = iter_text_chunks(source, chunk_size)
        self.delimiters: Delimiters | None = None
        self.count = 0  # segments emitted so far
        # a control character (separators aside) was seen: from then on segments are checked
        # one by one; one scan per chunk keeps clean files at full speed
        self.control_seen = False

    def __iter__(self) -> Iterator[Segment]:
        isa, rest = self._read_isa()
        self.count = 1
        yield isa
        assert self.delimiters is not None
        term = self.delimiters.segment
        elem = self.delimiters.element
        newline_mode = term == "\n"
        separators = "".join((elem, self.delimiters.sub_element, term,
                              self.delimiters.repetition or ""))
        pending = ""
        first = True
        while True:
            if first:
                text, first = rest, False
            else:
                nxt = next(self._chunks, None)
                if nxt is None:
                    break
                text = nxt
            if not self.control_seen and control_character(text, separators + "\r\n"):
                self.control_seen = True
            if newline_mode:
                text = text.replace("\r", "\n")
            elif "\r" in text or "\n" in text:
                text = text.replace("\r", "").replace("\n", "")
            pending += text
            if term not in pending:
                if len(pending) > MAX_SEGMENT:
                    raise X12SyntaxError(
                        f"segment {self.count + 1} runs past {MAX_SEGMENT} characters without a "
                        f"segment terminator ({self._term_name()}, from the ISA); the file uses "
                        "a different terminator or is corrupt",
                        position=self.count + 1,
                    )
                continue
            parts = pending.split(term)
            pending = parts.pop()
            for part in parts:
                seg = self._segment(part, elem)
                if seg is not None:
                    yield seg
        seg = self._segment(pending, elem)  # a last segment without its terminator
        if seg is not None:
            yield seg

    def _segment(self, part: str, elem: str) -> Segment | None:
        part = part.lstrip()
        if not part:
            return None
        position = self.count + 1
        pieces = part.split(elem)
        tag = pieces[0]
        if _bad_tag(tag):
            snippet = part[:40]
            raise X12SyntaxError(
                f"segment {position} starts with {snippet!r}, which is not a segment ID (2-3 "
                "upper-case letters or digits): the segment terminator from the ISA "
                f"({self._term_name()}) does not fit the rest of the file, or the file is "
                "corrupt; check the file with its sender",
                segment=tag[:3] or None,
                position=position,
            )
        self.count = position
        return Segment(tag, pieces[1:], position)

    def _term_name(self) -> str:
        assert self.delimiters is not None
        return "a line break" if self.delimiters.segment == "\n" else repr(self.delimiters.segment)

    def _read_isa(self) -> tuple[Segment, str]:
        buf = ""
        eof = False
        started = False
        while True:
            if not eof:
                nxt = next(self._chunks, None)
                if nxt is None:
                    eof = True
                else:
                    buf += nxt
            if not started:
                buf = buf.lstrip("\ufeff \t\r\n\x00")
                if not buf:
                    if eof:
                        raise EmptyFileError(
                            "the file is empty (or holds only whitespace); send the file again "
                            "with its contents"
                        )
                    continue
                if len(buf) < 3 and not eof:
                    continue
                started = True
                _reject_non_x12(buf)
            parsed = self._parse_isa(buf, eof)
            if parsed is not None:
                return parsed
            if len(buf) > _MAX_ISA_SCAN:
                raise X12SyntaxError(
                    "the ISA segment does not end within the first "
                    f"{_MAX_ISA_SCAN} characters: it must hold 16 elements followed by the "
                    "segment terminator; check that the file is a complete X12 interchange",
                    segment="ISA",
                    position=1,
                )

    def _parse_isa(self, buf: str, eof: bool) -> tuple[Segment, str] | None:
        """The ISA and the text after its terminator, or None when more text is needed."""
        chars: list[str] = []
        i = 0
        n = len(buf)
        seps = 0
        elem = ""
        # ISA + 16 separators + ISA16 (one character); line breaks inside are wrapping.
        while i < n:
            c = buf[i]
            i += 1
            if c in _LINE_BREAKS:
                continue
            chars.append(c)
            if len(chars) == 4:
                elem = c
                seps = 1
                if elem.isalnum() or elem.isspace():
                    raise X12SyntaxError(
                        f"the element separator (4th character of the ISA) is {elem!r}; it must "
                        "be a punctuation character such as '*'",
                        segment="ISA",
                        position=1,
                    )
            elif len(chars) > 4 and c == elem:
                seps += 1
                if seps == 16:
                    break
        else:
            if eof:
                raise X12SyntaxError(
                    f"the file ends inside the ISA segment after {max(seps, 0)} of its 16 "
                    "elements; the file is truncated or not an X12 interchange",
                    segment="ISA",
                    position=1,
                )
            return None
        # i now points just past the 16th separator
        while i < n and buf[i] in _LINE_BREAKS:
            i += 1
        if i + 1 >= n and not eof:
            return None
        if i >= n:
            raise X12SyntaxError(
                "the file ends right after the ISA's 16th element separator; ISA16 and the "
                "segment terminator are missing",
                segment="ISA",
                position=1,
            )
        sub = buf[i]
        i += 1
        if i >= n:
            raise X12SyntaxError(
                "the ISA has no segment terminator after ISA16; the file is truncated",
                segment="ISA",
                position=1,
            )
        term = buf[i]
        i += 1
        if term in _LINE_BREAKS:
            # Either line breaks are the terminator, or the ISA was wrapped right after ISA16
            # and the terminator follows: a segment ID never starts with punctuation.
            j = i
            while j < n and buf[j] in _LINE_BREAKS:
                j += 1
            if j >= n and not eof:
                return None
            if j < n and not buf[j].isalnum() and not buf[j].isspace():
                term, i = buf[j], j + 1
            else:
                term = "\n"
        elif term.isalnum() or term == " " or term in (elem, sub):
            raise X12SyntaxError(
                f"the character after ISA16 is {term!r}, which cannot be a segment terminator "
                "(it must differ from the element and sub-element separators and not be a "
                "letter, digit or space); check the ISA",
                segment="ISA",
                position=1,
            )
        if sub.isalnum() or sub == " " or sub == elem:
            raise X12SyntaxError(
                f"ISA16, the sub-element separator, is {sub!r}; it must be a punctuation "
                "character different from the element separator",
                segment="ISA",
                position=1,
            )
        text = "".join(chars) + sub
        elements = text.split(elem)[1:]
        repetition = elements[10] if len(elements[10]) == 1 and not elements[10].isalnum() else None
        self.delimiters = Delimiters(
            element=elem, sub_element=sub, segment=term, repetition=repetition
        )
        return Segment("ISA", elements, 1), buf[i:]


def _reject_non_x12(buf: str) -> None:
    if buf.startswith("ISA"):
        return
    if buf[0] in "{[":
        raise NotX12Error(
            "the input is JSON, not X12 EDI: it starts with "
            f"{buf[:20]!r}; if a JSON wrapper holds the EDI text, unwrap it and send the EDI "
            "text itself",
            position=None,
        )
    raise NotX12Error(
        f"the input is not X12 EDI: it starts with {buf[:20]!r}, not an ISA segment; send an "
        "X12 interchange that begins with ISA",
    )


# --------------------------------------------------------------------------------------------
# envelope
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EnvelopeIssue:
    """An envelope count or control-number mismatch tolerated with ``strict_envelope=False``."""

    segment: str
    position: int
    message: str


@dataclass(frozen=True, slots=True)
class InterchangeInfo:
    control: str  # ISA13
    sender_qualifier: str
    sender_id: str
    receiver_qualifier: str
    receiver_id: str
    date: str
    time: str
    version: str  # ISA12
    usage: str  # ISA15: P production, T test
    position: int


@dataclass(frozen=True, slots=True)
class GroupInfo:
    functional_id: str  # GS01, IM for 210
    sender: str
    receiver: str
    date: str
    time: str
    control: str  # GS06
    version: str  # GS08
    position: int


@dataclass
class _Counters:
    groups: int = 0
    sets: int = 0


@dataclass
class TransactionSet:
    """One ST..SE. Iterate ``segments()`` for the body (ST and SE excluded) exactly once; the
    SE count and control number are checked when the body has been read."""

    code: str  # ST01
    control: str  # ST02
    position: int  # segment index of the ST
    interchange: InterchangeInfo
    group: GroupInfo
    _reader: X12Reader = field(repr=False)
    _done: bool = field(default=False, repr=False)
    _body_iter: Iterator[Segment] | None = field(default=None, repr=False)

    def segments(self) -> Iterator[Segment]:
        if self._body_iter is not None:
            raise RuntimeError("a transaction set's segments can be read only once")
        self._body_iter = self._body()
        return self._body_iter

    def _body(self) -> Iterator[Segment]:
        reader = self._reader
        count = 1  # the ST
        for seg in reader._segments:
            count += 1
            if seg.tag == "SE":
                reader._check_se(self, seg, count)
                self._done = True
                return
            if seg.tag in ("ST", "GS", "GE", "ISA", "IEA"):
                raise X12EnvelopeError(
                    f"segment {seg.position} is {seg.tag}, but the transaction set that starts "
                    f"with ST at segment {self.position} (ST02 {self.control!r}) has not been "
                    "closed by an SE; add the missing SE or fix the file",
                    segment=seg.tag,
                    position=seg.position,
                )
            yield seg
        raise X12EnvelopeError(
            f"the file ends inside the transaction set that starts with ST at segment "
            f"{self.position} (ST02 {self.control!r}): SE, GE and IEA are missing; the file is "
            "truncated",
            segment="SE",
            position=reader.last_position + 1,
        )

    def skip(self) -> None:
        """Read (and check) whatever the consumer left of the body."""
        if self._done:
            return
        if self._body_iter is None:
            self._body_iter = self._body()
        for _ in self._body_iter:
            pass


class X12Reader:
    """Envelope-checked access to an X12 interchange (or several, back to back).

    With ``strict_envelope=True`` (the default), any count or control-number mismatch raises
    ``X12EnvelopeError`` naming the segment and its position. With ``strict_envelope=False`` the
    mismatches are recorded in ``issues`` instead; missing or misplaced envelope segments always
    raise.
    """

    def __init__(
        self, source: Source | Any, *, strict_envelope: bool = True, chunk_size: int = CHUNK_SIZE
    ) -> None:
        self._tokens = SegmentReader(source, chunk_size=chunk_size)
        self._iter = iter(self._tokens)
        self.strict_envelope = strict_envelope
        self.issues: list[EnvelopeIssue] = []
        self.interchange_count = 0
        self.group_count = 0
        self.transaction_set_count = 0

    @property
    def delimiters(self) -> Delimiters | None:
        return self._tokens.delimiters

    @property
    def control_seen(self) -> bool:
        """A control character has been read: segments must be checked one by one."""
        return self._tokens.control_seen

    @property
    def last_position(self) -> int:
        return self._tokens.count

    @property
    def _segments(self) -> Iterator[Segment]:
        return self._iter

    def _check_text(self, seg: Segment) -> None:
        """An envelope segment holds no control character (a separator aside)."""
        found = segment_control_character(seg, self.delimiters)
        if found is not None:
            raise X12SyntaxError(
                f"{seg.tag} at segment {seg.position} holds the control character {found!r}; "
                "the file is corrupt, ask its sender for a clean copy",
                segment=seg.tag,
                position=seg.position,
            )

    def _mismatch(self, seg: Segment, message: str) -> None:
        if self.strict_envelope:
            raise X12EnvelopeError(message, segment=seg.tag, position=seg.position)
        self.issues.append(EnvelopeIssue(seg.tag, seg.position, message))

    def _check_se(self, ts: TransactionSet, se: Segment, count: int) -> None:
        declared = se[1].strip()
        if _num(declared) != count:
            self._mismatch(
                se,
                f"SE at segment {se.position}: SE01 says {declared!r} segments, but the "
                f"transaction set from ST at segment {ts.position} holds {count} (ST and SE "
                "included); correct SE01 or the transaction set",
            )
        if se[2].strip() != ts.control.strip():
            self._mismatch(
                se,
                f"SE at segment {se.position}: SE02 {se[2]!r} does not match ST02 "
                f"{ts.control!r} of the ST at segment {ts.position}; the control numbers must "
                "be equal",
            )

    def transaction_sets(self) -> Iterator[TransactionSet]:
        interchange: InterchangeInfo | None = None
        group: GroupInfo | None = None
        counts = _Counters()
        seg: Segment | None = None
        for seg in self._iter:
            tag = seg.tag
            if tag in _ENVELOPE_TAGS and self._tokens.control_seen:
                self._check_text(seg)
            if tag == "ISA":
                if interchange is not None:
                    raise X12EnvelopeError(
                        f"segment {seg.position} is a new ISA, but the interchange that starts "
                        f"at segment {interchange.position} has no IEA; add the missing IEA",
                        segment="ISA",
                        position=seg.position,
                    )
                interchange = InterchangeInfo(
                    control=seg[13],
                    sender_qualifier=seg[5],
                    sender_id=seg[6].strip(),
                    receiver_qualifier=seg[7],
                    receiver_id=seg[8].strip(),
                    date=seg[9],
                    time=seg[10],
                    version=seg[12],
                    usage=seg[15],
                    position=seg.position,
                )
                counts.groups = 0
                self.interchange_count += 1
            elif tag == "GS":
                if interchange is None or group is not None:
                    where = (
                        "outside an interchange"
                        if interchange is None
                        else f"inside the group that starts at segment "
                        f"{group.position if group else '?'}, which has no GE"
                    )
                    raise X12EnvelopeError(
                        f"segment {seg.position} is GS {where}; add the missing ISA or GE",
                        segment="GS",
                        position=seg.position,
                    )
                group = GroupInfo(
                    functional_id=seg[1],
                    sender=seg[2].strip(),
                    receiver=seg[3].strip(),
                    date=seg[4],
                    time=seg[5],
                    control=seg[6],
                    version=seg[8],
                    position=seg.position,
                )
                counts.groups += 1
                counts.sets = 0
                self.group_count += 1
            elif tag == "ST":
                if group is None or interchange is None:
                    raise X12EnvelopeError(
                        f"segment {seg.position} is ST outside a functional group (no GS before "
                        "it); add the missing GS",
                        segment="ST",
                        position=seg.position,
                    )
                counts.sets += 1
                self.transaction_set_count += 1
                ts = TransactionSet(
                    code=seg[1],
                    control=seg[2],
                    position=seg.position,
                    interchange=interchange,
                    group=group,
                    _reader=self,
                )
                yield ts
                ts.skip()
            elif tag == "GE":
                if group is None:
                    raise X12EnvelopeError(
                        f"segment {seg.position} is GE without a GS before it; remove it or add "
                        "the GS",
                        segment="GE",
                        position=seg.position,
                    )
                if _num(seg[1]) != counts.sets:
                    self._mismatch(
                        seg,
                        f"GE at segment {seg.position}: GE01 says {seg[1]!r} transaction sets, "
                        f"but the group from GS at segment {group.position} holds {counts.sets}; "
                        "correct GE01",
                    )
                if seg[2].strip() != group.control.strip():
                    self._mismatch(
                        seg,
                        f"GE at segment {seg.position}: GE02 {seg[2]!r} does not match GS06 "
                        f"{group.control!r} of the GS at segment {group.position}; the group "
                        "control numbers must be equal",
                    )
                group = None
            elif tag == "IEA":
                if interchange is None or group is not None:
                    problem = (
                        "without an ISA before it"
                        if interchange is None
                        else "while the group from GS at segment "
                        f"{group.position if group else '?'} has no GE"
                    )
                    raise X12EnvelopeError(
                        f"segment {seg.position} is IEA {problem}; add the missing segment",
                        segment="IEA",
                        position=seg.position,
                    )
                if _num(seg[1]) != counts.groups:
                    self._mismatch(
                        seg,
                        f"IEA at segment {seg.position}: IEA01 says {seg[1]!r} functional "
                        f"groups, but the interchange from ISA at segment {interchange.position} "
                        f"holds {counts.groups}; correct IEA01",
                    )
                if seg[2].strip() != interchange.control.strip():
                    self._mismatch(
                        seg,
                        f"IEA at segment {seg.position}: IEA02 {seg[2]!r} does not match ISA13 "
                        f"{interchange.control!r}; the interchange control numbers must be "
                        "equal",
                    )
                interchange = None
            else:
                raise X12EnvelopeError(
                    f"segment {seg.position} ({tag}) is outside a transaction set (not between "
                    "ST and SE); fix the envelope",
                    segment=tag,
                    position=seg.position,
                )
        end = self.last_position + 1
        if group is not None:
            raise X12EnvelopeError(
                f"the file ends without a GE for the group that starts at segment "
                f"{group.position} (and without an IEA); the file is truncated",
                segment="GE",
                position=end,
            )
        if interchange is not None:
            raise X12EnvelopeError(
                f"the file ends without an IEA for the interchange that starts at segment "
                f"{interchange.position}; the file is truncated",
                segment="IEA",
                position=end,
            )


_ENVELOPE_TAGS = frozenset({"ISA", "GS", "ST", "SE", "GE", "IEA"})


def segment_control_character(seg: Segment, delimiters: Delimiters | None) -> str | None:
    """The first control character in a segment's elements, separators of the file aside."""
    allowed = "".join(d for d in (delimiters.sub_element, delimiters.repetition or "")
                      ) if delimiters else ""
    return control_character("".join(seg.elements), allowed)


def _num(raw: str) -> int | None:
    """A count element (X12 type N0, at most 10 ASCII digits), or None when it is not one:
    ``isdigit`` alone lets in '²' and numbers too long for ``int``."""
    text = raw.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 10 else None
