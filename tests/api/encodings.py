"""Byte-level encoders for the lenient-ingest tests: elements in Explicit or Implicit VR, either byte order,
sequences, and File Meta groups that are right or wrong in chosen ways (PS3.5 §7, PS3.10 §7.1)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
UNDEFINED = 0xFFFFFFFF
SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


def padded(value: bytes, vr: str) -> bytes:
    """Even length (PS3.5 §7.1.1): UI pads with NUL, text with a space, binary with NUL."""
    if len(value) % 2 == 0:
        return value
    return value + (b" " if vr not in ("UI", "OB", "UN", "US", "UL", "SL", "SS", "FD", "FL") else b"\x00")


@dataclass(frozen=True)
class Encoder:
    """Encodes elements as one transfer syntax would: Explicit or Implicit VR, little or big endian."""

    explicit: bool = True
    little_endian: bool = True

    @property
    def order(self) -> str:
        return "<" if self.little_endian else ">"

    def element(self, tag: int, vr: str, value: bytes, pad: bool = True) -> bytes:
        value = padded(value, vr) if pad else value
        group, elem = tag >> 16, tag & 0xFFFF
        if not self.explicit:
            return struct.pack(self.order + "HHL", group, elem, len(value)) + value
        if vr in LONG_VRS:
            return struct.pack(self.order + "HH2sHL", group, elem, vr.encode(), 0, len(value)) + value
        return struct.pack(self.order + "HH2sH", group, elem, vr.encode(), len(value)) + value

    def sequence(self, tag: int, items: list[bytes], undefined: bool) -> bytes:
        """A sequence of already-encoded item contents (each item in its own encoding)."""
        body = b"".join(self.item(content, undefined) for content in items)
        if undefined:
            body += struct.pack(self.order + "HHL", 0xFFFE, 0xE0DD, 0)
        length = UNDEFINED if undefined else len(body)
        group, elem = tag >> 16, tag & 0xFFFF
        if self.explicit:
            return struct.pack(self.order + "HH2sHL", group, elem, b"SQ", 0, length) + body
        return struct.pack(self.order + "HHL", group, elem, length) + body

    def item(self, content: bytes, undefined: bool) -> bytes:
        if undefined:
            end = struct.pack(self.order + "HHL", 0xFFFE, 0xE00D, 0)
            return struct.pack(self.order + "HHL", 0xFFFE, 0xE000, UNDEFINED) + content + end
        return struct.pack(self.order + "HHL", 0xFFFE, 0xE000, len(content)) + content


EXPLICIT_LE = Encoder()
IMPLICIT_LE = Encoder(explicit=False)
EXPLICIT_BE = Encoder(little_endian=False)


def meta(
    sop_instance_uid: str,
    transfer_syntax: str | None,
    encoder: Encoder = EXPLICIT_LE,
    group_length_error: int = 0,
) -> bytes:
    """A File Meta group (always little endian), optionally without Transfer Syntax UID or with a wrong length."""
    body = encoder.element(0x00020001, "OB", b"\x00\x01")
    body += encoder.element(0x00020002, "UI", SECONDARY_CAPTURE.encode())
    body += encoder.element(0x00020003, "UI", sop_instance_uid.encode())
    if transfer_syntax is not None:
        body += encoder.element(0x00020010, "UI", transfer_syntax.encode())
    length = struct.pack("<L", len(body) + group_length_error)
    return encoder.element(0x00020000, "UL", length) + body


def part10(meta_group: bytes, dataset: bytes) -> bytes:
    return bytes(128) + b"DICM" + meta_group + dataset
