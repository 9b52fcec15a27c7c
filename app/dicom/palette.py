"""PALETTE COLOR lookup (PS3.3 C.7.6.3.1.5-6), including segmented palettes (C.7.9.2).

Read here rather than with pydicom's ``apply_color_lut``, which reads non-segmented LUT Data
in the machine's byte order and so shows big-endian palettes (PS3.5 A.3) in the wrong colours.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset

from app.errors import NotRenderable

DESCRIPTOR_TAGS = {"Red": "(0028,1101)", "Green": "(0028,1102)", "Blue": "(0028,1103)"}  # C.7.6.3.1.5
MAX_INDIRECTION = 8  # nested indirect segments allowed before a palette is called malformed


def _is_little_endian(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    if syntax is not None and syntax.is_transfer_syntax:
        return bool(syntax.is_little_endian)
    encoding = getattr(ds, "original_encoding", (None, True))
    return encoding[1] is not False


def _words(data: bytes, bits: int, little: bool) -> np.ndarray:
    if bits <= 8:
        return np.frombuffer(data, dtype=np.uint8).astype(np.int64)
    usable = len(data) - len(data) % 2
    return np.frombuffer(data[:usable], dtype="<u2" if little else ">u2").astype(np.int64)


def _expand_segments(words: np.ndarray, start: int, stop: int, out: list[float], depth: int, shift: int) -> None:
    """Discrete (0), linear (1) and indirect (2) segments of C.7.9.2, appended to ``out``."""
    if depth > MAX_INDIRECTION:
        raise NotRenderable("a segmented palette nests indirect segments too deeply")
    i = start
    while i < stop:
        if i + 1 >= len(words):
            raise NotRenderable("a segmented palette ends inside a segment header")
        opcode, length = int(words[i]), int(words[i + 1])
        if opcode == 0:  # discrete: `length` values follow
            out.extend(float(v) for v in words[i + 2 : i + 2 + length])
            i += 2 + length
        elif opcode == 1:  # linear: from the previous value to y1 in `length` steps
            if not out:
                raise NotRenderable("a segmented palette starts with a linear segment")
            y0, y1 = out[-1], float(words[i + 2])
            out.extend(np.linspace(y0, y1, length + 1)[1:].round().tolist())
            i += 3
        elif opcode == 2:  # indirect: replay `length` segments found at a word offset
            offset = int(words[i + 2]) | (int(words[i + 3]) << shift)  # low word first
            _expand_segment_count(words, offset, length, out, depth + 1, shift)
            i += 4
        else:
            raise NotRenderable(f"a segmented palette holds an unknown segment type {opcode}")


def _expand_segment_count(words: np.ndarray, start: int, count: int, out: list[float], depth: int, shift: int) -> None:
    i = start
    for _ in range(count):
        if i + 1 >= len(words):
            raise NotRenderable("an indirect palette segment points outside the table")
        opcode, length = int(words[i]), int(words[i + 1])
        size = {0: 2 + length, 1: 3, 2: 4}.get(opcode)
        if size is None:
            raise NotRenderable(f"a segmented palette holds an unknown segment type {opcode}")
        _expand_segments(words, i, i + size, out, depth, shift)
        i += size


def _table(ds: Dataset, colour: str, little: bool) -> tuple[np.ndarray, int, int]:
    """Entries, first mapped index and entry bit depth of one channel."""
    descriptor = [int(v) for v in ds[f"{colour}PaletteColorLookupTableDescriptor"].value]
    entries = descriptor[0] or 65536
    first = descriptor[1]
    if first >= 32768 and int(ds.get("PixelRepresentation", 0) or 0) == 1:
        first -= 65536
    bits = descriptor[2] if descriptor[2] in (8, 16) else 16
    plain = ds.get(f"{colour}PaletteColorLookupTableData")
    if plain is not None:
        data = bytes(plain)
        word_bits = 16 if len(data) >= 2 * entries else 8  # 8-bit entries are sometimes kept in 16-bit words
        table = _words(data, word_bits, little)[:entries].astype(np.float64)
    else:
        segmented = ds.get(f"Segmented{colour}PaletteColorLookupTableData")
        if segmented is None:
            raise NotRenderable(f"PALETTE COLOR image without {colour} Palette Color Lookup Table Data")
        words = _words(bytes(segmented), bits, little)
        values: list[float] = []
        _expand_segments(words, 0, len(words), values, 0, 8 if bits <= 8 else 16)
        table = np.asarray(values[:entries], dtype=np.float64)
    if table.size == 0:
        raise NotRenderable(f"the {colour} palette holds no entries")
    return table, first, bits


def apply_palette(indices: np.ndarray, ds: Dataset) -> np.ndarray:
    """(rows, columns, 3) uint8 RGB: each index through the Red/Green/Blue tables, scaled from their bit depth."""
    little = _is_little_endian(ds)
    channels = []
    for colour in ("Red", "Green", "Blue"):
        try:
            table, first, bits = _table(ds, colour, little)
        except NotRenderable:
            raise
        except Exception:  # pydicom raises on wrong-length descriptors, numpy on odd data
            raise NotRenderable(
                f"the {colour} Palette Color Lookup Table Descriptor {DESCRIPTOR_TAGS[colour]} or its data is malformed"
            ) from None
        top = max(float((1 << bits) - 1), float(table.max()))
        scaled = np.rint(table * (255.0 / top)).astype(np.uint8)
        channels.append(scaled[np.clip(indices.astype(np.int64) - first, 0, len(table) - 1)])
    return np.stack(channels, axis=-1)
