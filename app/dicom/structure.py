"""Walk the element structure of an encoded data set without decoding values (PS3.5 §7).

pydicom tolerates files cut short; a service that acknowledges an upload must not. This
walker checks that every element's declared length fits in the bytes, that sequences and
items close, and that nesting and element counts stay bounded, before pydicom parses it.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass

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


class _Walker:
    def __init__(self, buf: Buffer, encoding: Encoding, limits: WalkLimits) -> None:
        self.buf = buf
        self.explicit = encoding.explicit
        prefix = "<" if encoding.little_endian else ">"
        self.tag_fmt = struct.Struct(prefix + "HH")
        self.u16 = struct.Struct(prefix + "H")
        self.u32 = struct.Struct(prefix + "L")
        self.limits = limits
        self.elements = 0

    def _need(self, pos: int, count: int, end: int, what: str) -> None:
        if pos + count > end:
            raise InvalidDicom(f"the file is truncated: {what} at byte {pos} runs past the end of the data")

    def _tag(self, pos: int) -> int:
        group, element = self.tag_fmt.unpack_from(self.buf, pos)
        return (int(group) << 16) | int(element)

    def dataset(self, pos: int, end: int, depth: int, in_item: bool) -> int:
        """Walk elements from ``pos``; return the position after the data set (or its item delimiter)."""
        if depth > self.limits.max_depth:
            raise InvalidDicom(f"sequences are nested more than {self.limits.max_depth} levels deep")
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
            pos = self._element(pos, end, tag, depth)
        if in_item:
            raise InvalidDicom("the file is truncated: an item of undefined length is never closed")
        return pos

    def _element(self, pos: int, end: int, tag: int, depth: int) -> int:
        vr = b""
        if self.explicit:
            vr = bytes(self.buf[pos + 4 : pos + 6])
            if not (vr.isalpha() and vr.isupper()):
                raise InvalidDicom(f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) has an invalid VR {vr!r}")
            if vr in LONG_VRS or vr not in KNOWN_VRS:
                self._need(pos, 12, end, "an element header")
                length, pos = self.u32.unpack_from(self.buf, pos + 8)[0], pos + 12
            else:
                length, pos = self.u16.unpack_from(self.buf, pos + 6)[0], pos + 8
        else:
            length, pos = self.u32.unpack_from(self.buf, pos + 4)[0], pos + 8
        if length == UNDEFINED:
            if tag == PIXEL_DATA and vr != b"SQ":
                return self._fragments(pos, end)
            if vr == b"UN":  # PS3.5 6.2.2: a UN sequence of undefined length is Implicit VR inside
                self.explicit = False
                try:
                    return self._sequence(pos, end, depth, defined_end=None)
                finally:
                    self.explicit = True
            return self._sequence(pos, end, depth, defined_end=None)
        self._need(pos, length, end, f"the value of ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        if vr == b"SQ" and length:
            self._sequence(pos, pos + length, depth, defined_end=pos + length)
        return pos + int(length)

    def _sequence(self, pos: int, end: int, depth: int, defined_end: int | None) -> int:
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
                pos = self.dataset(pos, end, depth + 1, in_item=True)
            else:
                self._need(pos, length, end, "a sequence item")
                self.dataset(pos, pos + length, depth + 1, in_item=False)
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


def walk(buf: Buffer, start: int, encoding: Encoding, limits: WalkLimits | None = None) -> None:
    """Check the structure of the data set in ``buf[start:]``, raising :class:`InvalidDicom` on faults."""
    _Walker(buf, encoding, limits or WalkLimits()).dataset(start, len(buf), depth=0, in_item=False)


def walk_group(buf: Buffer, start: int, group: int) -> int:
    """Walk the explicit VR little endian elements of ``group`` (the File Meta group); return where it ends."""
    walker = _Walker(buf, Encoding(explicit=True, little_endian=True), WalkLimits(max_depth=2))
    pos = start
    while pos + 2 <= len(buf) and walker.u16.unpack_from(buf, pos)[0] == group:
        walker._need(pos, 8, len(buf), "an element header")
        pos = walker._element(pos, len(buf), walker._tag(pos), depth=0)
    return pos
