"""Walk the element structure of an encoded data set without decoding values (PS3.5 §7).

pydicom tolerates files cut short; a service that acknowledges an upload must not. This
walker checks that every element's declared length fits in the bytes, that sequences and
items close, and that nesting and element counts stay bounded, before pydicom parses it.

It reads the bytes exactly as pydicom's reader (``pydicom.filereader``) will, so that what is
checked is what gets parsed, including pydicom's tolerance of mixed encodings:

- each data set (the top level and every sequence item) looks at its first element: VR bytes
  that are not two upper-case letters mean Implicit VR. At the top level the encoding found
  wins over the transfer syntax; inside a sequence an Explicit VR writer may switch to
  Implicit VR (PS3.5 §6.2.2 for UN sequences; some writers do it for any sequence), never back;
- in an Explicit VR data set, one element whose VR bytes are outside ``AA``-``ZZ`` is read as an
  Implicit VR element; a VR inside that range that no edition defines has a 2-byte length;
- undefined lengths (PS3.5 §7.1.3, §7.5): SQ (and UN, PS3.5 §6.2.2) are sequences; Implicit VR
  elements are sequences when the dictionary says SQ or, for tags it does not know, when an
  item follows; Pixel Data holds fragments (PS3.5 A.4); anything else runs to a Sequence
  Delimitation Item.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_VR

from app.errors import InvalidDicom

Buffer = bytes | mmap.mmap

#: Explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 Table 7.1-1).
LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
KNOWN_VRS = LONG_VRS | frozenset(
    {
        b"AE",
        b"AS",
        b"AT",
        b"CS",
        b"DA",
        b"DS",
        b"DT",
        b"FL",
        b"FD",
        b"IS",
        b"LO",
        b"LT",
        b"PN",
        b"SH",
        b"SL",
        b"SS",
        b"ST",
        b"TM",
        b"UI",
        b"UL",
        b"US",
    }
)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010


@dataclass(frozen=True)
class Encoding:
    """How the data set is encoded: explicit or implicit VR, little or big endian."""

    explicit: bool
    little_endian: bool


@dataclass
class WalkLimits:
    """Bounds that stop hostile structures early."""

    max_depth: int = 32
    max_elements: int = 2_000_000


@dataclass
class WalkReport:
    """What the walk found that the declared encoding did not say (reported as upload warnings)."""

    #: The top-level data set's VR encoding as found (pydicom reads it so, whatever the syntax says).
    explicit: bool = True
    #: Sequence items of an Explicit VR data set encoded in Implicit VR.
    implicit_items: int = 0
    #: Elements of an Explicit VR data set whose VR bytes are not a VR, read as Implicit VR.
    implicit_elements: int = 0
    #: VR codes no edition of the standard defines (read with a 2-byte length, as pydicom does).
    unknown_vrs: set[str] = field(default_factory=set)
    #: Top-level elements asked for (``capture``): tag -> (value offset, value length).
    values: dict[int, tuple[int, int]] = field(default_factory=dict)


def looks_explicit(buf: Buffer, pos: int) -> bool | None:
    """pydicom's test (``filereader._is_implicit_vr``): are the VR bytes of the element at ``pos`` letters?

    ``None`` when fewer than 6 bytes are left (the assumed encoding stands).
    """
    if pos + 6 > len(buf):
        return None
    first, second = buf[pos + 4], buf[pos + 5]
    return 0x40 < first < 0x5B and 0x40 < second < 0x5B


def _tag_text(tag: int) -> str:
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


class _Walker:
    def __init__(self, buf: Buffer, little_endian: bool, limits: WalkLimits, capture: frozenset[int]) -> None:
        self.buf = buf
        prefix = "<" if little_endian else ">"
        self.tag_fmt = struct.Struct(prefix + "HH")
        self.u16 = struct.Struct(prefix + "H")
        self.u32 = struct.Struct(prefix + "L")
        self.sequence_end = self.tag_fmt.pack(0xFFFE, 0xE0DD)
        self.limits = limits
        self.capture = capture
        self.elements = 0
        self.report = WalkReport()

    def _need(self, pos: int, count: int, end: int, what: str, tag: int | None = None) -> None:
        """``what`` runs past ``end``: the file is truncated (``tag``: the element whose value it is)."""
        if pos + count > end:
            if tag is not None:
                what = f"{what} {_tag_text(tag)}"  # formatted only when refused: every element passes here
            raise InvalidDicom(f"the file is truncated: {what} at byte {pos} runs past the end of the data")

    def _tag(self, pos: int) -> int:
        group, element = self.tag_fmt.unpack_from(self.buf, pos)
        return (int(group) << 16) | int(element)

    def encoding_of_item(self, pos: int, assumed_explicit: bool, in_sequence: bool) -> bool:
        """Explicit VR or not, for the data set starting at ``pos`` (pydicom's ``_is_implicit_vr``)."""
        if in_sequence and not assumed_explicit:
            return False  # sequences do not switch from implicit back to explicit
        found = looks_explicit(self.buf, pos)
        return assumed_explicit if found is None else found

    def dataset(self, pos: int, end: int, depth: int, in_item: bool, explicit: bool, in_un: bool = False) -> int:
        """Walk elements from ``pos``; return the position after the data set (or its item delimiter).

        ``in_un``: an item of a UN sequence, which PS3.5 §6.2.2 itself encodes in Implicit VR.
        """
        if depth > self.limits.max_depth:
            raise InvalidDicom(f"sequences are nested more than {self.limits.max_depth} levels deep")
        if depth == 0:
            explicit = self.report.explicit = self.encoding_of_item(pos, explicit, in_sequence=False)
        else:
            found = self.encoding_of_item(pos, explicit, in_sequence=True)
            if explicit and not found and not in_un and pos + 8 <= end and self._tag(pos) != ITEM_END:
                self.report.implicit_items += 1
            explicit = found
        while pos < end:
            if depth == 0 and end - pos < 8 and not any(self.buf[pos:end]):
                return end  # a few bytes of zero padding after the last element
            self.elements += 1
            if self.elements > self.limits.max_elements:
                raise InvalidDicom(f"the data set holds more than {self.limits.max_elements} elements")
            self._need(pos, 8, end, "an element header")
            tag = self._tag(pos)
            if tag == ITEM_END:
                if not in_item:
                    raise InvalidDicom(f"an item delimiter at byte {pos} closes no item")
                return pos + 8
            if tag in (ITEM, SEQUENCE_END):
                raise InvalidDicom(f"a misplaced item or sequence delimiter at byte {pos}")
            pos = self._element(pos, end, tag, depth, explicit)
        if in_item:
            raise InvalidDicom("the file is truncated: an item of undefined length is never closed")
        return pos

    def _header(self, pos: int, end: int, tag: int, explicit: bool) -> tuple[bytes | None, int, int]:
        """VR (None when implicit), value length and value offset of the element at ``pos``."""
        if not explicit:
            return None, self.u32.unpack_from(self.buf, pos + 4)[0], pos + 8
        vr = bytes(self.buf[pos + 4 : pos + 6])
        if vr in LONG_VRS:
            self._need(pos, 12, end, "an element header")
            return vr, self.u32.unpack_from(self.buf, pos + 8)[0], pos + 12
        if vr in KNOWN_VRS:
            return vr, self.u16.unpack_from(self.buf, pos + 6)[0], pos + 8
        if not (b"AA" <= vr <= b"ZZ"):  # not a VR: this element is Implicit VR (pydicom's assume_implicit_vr_switch)
            self.report.implicit_elements += 1
            length = self.u32.unpack_from(self.buf, pos + 4)[0]
            if length != UNDEFINED and pos + 8 + length > end:
                raise InvalidDicom(
                    f"element {_tag_text(tag)} has an invalid VR {vr!r}, and read as Implicit VR its value "
                    f"at byte {pos} runs past the end of the data: the file is truncated or not DICOM"
                )
            return None, length, pos + 8
        self.report.unknown_vrs.add(vr.decode("ascii", "replace"))
        return vr, self.u16.unpack_from(self.buf, pos + 6)[0], pos + 8

    def _is_sequence(self, tag: int, vr: bytes | None, pos: int, end: int) -> bool:
        """Whether an undefined-length value is a sequence, as pydicom's reader decides."""
        if vr is not None:
            return vr in (b"SQ", b"UN")  # UN of undefined length is a sequence (PS3.5 §6.2.2)
        try:
            return dictionary_VR(tag) == "SQ"
        except KeyError:  # a private or unknown tag: a sequence when an item follows
            return pos + 4 <= end and self._tag(pos) == ITEM

    def _element(self, pos: int, end: int, tag: int, depth: int, explicit: bool) -> int:
        vr, length, pos = self._header(pos, end, tag, explicit)
        if length == UNDEFINED:
            if self._is_sequence(tag, vr, pos, end):
                return self._sequence(pos, end, depth, None, explicit, in_un=vr == b"UN")
            if tag == PIXEL_DATA:
                return self._fragments(pos, end)
            return self._delimited(pos, end, tag)
        self._need(pos, length, end, "the value of", tag)
        if depth == 0 and tag in self.capture:
            self.report.values[tag] = (pos, int(length))
        if vr == b"SQ" and length:
            self._sequence(pos, pos + length, depth, pos + length, explicit)
        return pos + int(length)

    def _sequence(
        self, pos: int, end: int, depth: int, defined_end: int | None, explicit: bool, in_un: bool = False
    ) -> int:
        """Items of a sequence, closed by its defined length or by a sequence delimiter."""
        while defined_end is None or pos < defined_end:
            self._need(pos, 8, end, "a sequence item header")
            tag = self._tag(pos)
            length = self.u32.unpack_from(self.buf, pos + 4)[0]
            pos += 8
            if tag == SEQUENCE_END and defined_end is None:
                return pos
            if tag != ITEM:
                raise InvalidDicom(f"a sequence holds something other than an item at byte {pos - 8}")
            if length == UNDEFINED:
                pos = self.dataset(pos, end, depth + 1, True, explicit, in_un)
            else:
                self._need(pos, length, end, "a sequence item")
                self.dataset(pos, pos + length, depth + 1, False, explicit, in_un)
                pos += length
        return pos

    def _fragments(self, pos: int, end: int) -> int:
        """Encapsulated Pixel Data (PS3.5 A.4): items of defined length up to a sequence delimiter."""
        while True:
            self._need(pos, 8, end, "an encapsulated pixel data item")
            tag = self._tag(pos)
            length = self.u32.unpack_from(self.buf, pos + 4)[0]
            pos += 8
            if tag == SEQUENCE_END:
                return pos
            if tag != ITEM or length == UNDEFINED:
                raise InvalidDicom(f"encapsulated pixel data is malformed at byte {pos - 8}")
            self._need(pos, length, end, "a pixel data fragment")
            pos += length

    def _delimited(self, pos: int, end: int, tag: int) -> int:
        """A non-sequence value of undefined length runs to a Sequence Delimitation Item (as pydicom reads it)."""
        found = self.buf.find(self.sequence_end, pos, end)
        if found < 0 or found + 8 > end:
            raise InvalidDicom(f"the file is truncated: the value of {_tag_text(tag)} at byte {pos} is never closed")
        return found + 8


def walk(
    buf: Buffer,
    start: int,
    encoding: Encoding,
    limits: WalkLimits | None = None,
    capture: frozenset[int] = frozenset(),
) -> WalkReport:
    """Check the structure of the data set in ``buf[start:]``, raising :class:`InvalidDicom` on faults.

    ``encoding`` is what the transfer syntax declares; the report says what was found.
    """
    walker = _Walker(buf, encoding.little_endian, limits or WalkLimits(), capture)
    walker.dataset(start, len(buf), depth=0, in_item=False, explicit=encoding.explicit)
    return walker.report


def walk_group(buf: Buffer, start: int, group: int, capture: frozenset[int] = frozenset()) -> tuple[int, WalkReport]:
    """Walk the elements of ``group`` (the File Meta group, PS3.10 §7.1); return where it ends and what was found.

    Explicit VR Little Endian by definition; written in Implicit VR by some old writers, which pydicom
    detects from the first element and reads, and so do we.
    """
    walker = _Walker(buf, True, WalkLimits(max_depth=2), capture)
    explicit = walker.report.explicit = walker.encoding_of_item(start, True, in_sequence=False)
    pos = start
    while pos + 2 <= len(buf) and walker.u16.unpack_from(buf, pos)[0] == group:
        walker._need(pos, 8, len(buf), "an element header")
        pos = walker._element(pos, len(buf), walker._tag(pos), depth=0, explicit=explicit)
    return pos, walker.report
