"""Byte-level builders for hostile DICOM files (explicit VR little endian unless said otherwise)."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

LONG_VRS = {b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR", b"OD", b"OF", b"OL", b"OV", b"SV", b"UV"}
UNDEFINED = 0xFFFFFFFF


def element(group: int, elem: int, vr: bytes, value: bytes, length: int | None = None) -> bytes:
    size = len(value) if length is None else length
    if vr in LONG_VRS:
        return struct.pack("<HH2sHL", group, elem, vr, 0, size) + value
    return struct.pack("<HH2sH", group, elem, vr, size) + value


def item(content: bytes, undefined: bool = False) -> bytes:
    if undefined:
        return struct.pack("<HHL", 0xFFFE, 0xE000, UNDEFINED) + content + struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
    return struct.pack("<HHL", 0xFFFE, 0xE000, len(content)) + content


def sequence_end() -> bytes:
    return struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)


def identity() -> bytes:
    """SOP Class (Secondary Capture) and a fresh SOP Instance UID."""
    sop_class = b"1.2.840.10008.5.1.4.1.1.7\x00"
    uid = generate_uid().encode()
    uid += b"\x00" * (len(uid) % 2)
    return element(0x0008, 0x0016, b"UI", sop_class) + element(0x0008, 0x0018, b"UI", uid)


def part10(dataset: bytes, transfer_syntax: str = ExplicitVRLittleEndian, preamble: bytes = b"") -> bytes:
    ts = transfer_syntax.encode()
    ts += b"\x00" * (len(ts) % 2)
    meta = element(0x0002, 0x0001, b"OB", b"\x00\x01") + element(0x0002, 0x0010, b"UI", ts)
    meta = element(0x0002, 0x0000, b"UL", struct.pack("<L", len(meta))) + meta
    return preamble.ljust(128, b"\x00")[:128] + b"DICM" + meta + dataset


def nested_sequences(depth: int) -> bytes:
    """``depth`` levels of undefined-length sequences, each in an undefined-length item."""
    inner = element(0x0010, 0x0020, b"LO", b"ID")
    for _ in range(depth):
        inner = struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, UNDEFINED) + item(inner, True) + sequence_end()
    return inner


def image(
    rows: int,
    columns: int,
    bits: int = 16,
    frames: int | None = None,
    pixel_bytes: bytes = b"\x00" * 8,
    photometric: str = "MONOCHROME2",
) -> bytes:
    """A header declaring any geometry, with whatever pixel bytes are given."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = bits
    ds.BitsStored = max(bits, 1)
    ds.HighBit = max(bits - 1, 0)
    ds.PixelRepresentation = 0
    if frames is not None:
        ds.NumberOfFrames = frames
    ds.PixelData = pixel_bytes
    ds["PixelData"].VR = "OB" if bits <= 8 else "OW"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def deflate_bomb(inflated_bytes: int) -> bytes:
    """A Deflated Explicit VR Little Endian file whose data set inflates to ``inflated_bytes``."""
    dataset = identity() + element(0x0009, 0x0010, b"LO", b"BOMB") + element(0x0009, 0x1010, b"OB", b"", inflated_bytes)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    chunks = [compressor.compress(dataset)]
    zeros = bytes(1 << 20)
    for _ in range(inflated_bytes // len(zeros)):
        chunks.append(compressor.compress(zeros))
    chunks.append(compressor.compress(bytes(inflated_bytes % len(zeros))))
    chunks.append(compressor.flush())
    return part10(b"".join(chunks), "1.2.840.10008.1.2.1.99")


def corrupt_codec_stream(path: Path, offset: int = 0, length: int = 32) -> bytes:
    """The file at ``path`` with ``length`` bytes of its first pixel fragment overwritten, structure intact."""
    data = bytearray(path.read_bytes())
    ds = dcmread(path)
    fragment_start = data.find(b"\xfe\xff\x00\xe0", data.rfind(b"\xe0\x7f\x10\x00"))
    first_item = data.find(b"\xfe\xff\x00\xe0", fragment_start + 8)  # skip the Basic Offset Table item
    fragment_length = struct.unpack_from("<L", data, first_item + 4)[0]
    begin = first_item + 8 + min(offset, fragment_length - 1)
    length = max(1, min(length, first_item + 8 + fragment_length - begin))
    rng = np.random.default_rng(len(data) + offset)
    data[begin : begin + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    assert ds.file_meta.TransferSyntaxUID.is_compressed
    return bytes(data)


def jpeg_that_aborts_gdcm() -> bytes:
    """SC_rgb_jpeg_dcmtk.dcm with its third DHT marker (FF C4) turned into FF D4.

    Found by the fuzz: GDCM's JPEG codec lets a C++ exception escape on this stream and the
    process aborts (SIGABRT), so it must only ever be decoded inside the decode sandbox.
    """
    from tests.conftest import sample

    data = bytearray(sample("SC_rgb_jpeg_dcmtk.dcm").read_bytes())
    pixel_data = data.rfind(b"\xe0\x7f\x10\x00")
    markers = [i for i in range(pixel_data, len(data) - 1) if data[i : i + 2] == b"\xff\xc4"]
    data[markers[2] + 1] = 0xD4
    return bytes(data)


def with_new_uid(data: bytes) -> bytes:
    """The same file as another instance: a fresh SOP Instance UID, everything else (pixels too) unchanged."""
    ds = dcmread(BytesIO(data), force=True)
    ds.SOPInstanceUID = generate_uid()
    if getattr(ds, "file_meta", None) is not None and "MediaStorageSOPInstanceUID" in ds.file_meta:
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    out = BytesIO()
    ds.save_as(out)
    return out.getvalue()


def encapsulated(
    stream: bytes, transfer_syntax: str, rows: int, columns: int, samples: int = 1, bits: int = 8
) -> bytes:
    """A Part 10 file holding one compressed frame ``stream`` under a header declaring ``rows`` x ``columns``."""
    from pydicom.encaps import encapsulate

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = samples
    ds.PhotometricInterpretation = "MONOCHROME2" if samples == 1 else "RGB"
    if samples == 3:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits, bits, bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = encapsulate([stream])
    ds["PixelData"].VR = "OB"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _jpeg_segments(stream: bytes) -> list[tuple[int, int]]:
    """(marker, offset) of each marker segment before the first scan of a JPEG / JPEG-LS stream."""
    found, pos = [], 2
    while pos + 4 <= len(stream) and stream[pos] == 0xFF:
        marker = stream[pos + 1]
        found.append((marker, pos))
        if marker == 0xDA:
            break
        pos += 2 + struct.unpack_from(">H", stream, pos + 2)[0]
    return found


def declare_size(stream: bytes, rows: int, columns: int) -> bytes:
    """The stream with its own header (JPEG SOFn, JPEG-LS SOF55, J2K SIZ) declaring ``columns`` x ``rows``."""
    data = bytearray(stream)
    siz = data.find(b"\xff\x4f\xff\x51")
    if siz >= 0:  # SIZ: Xsiz, Ysiz at +8/+12; one tile of the whole image (XTsiz, YTsiz at +24/+28)
        struct.pack_into(">II", data, siz + 8, columns, rows)
        struct.pack_into(">IIII", data, siz + 16, 0, 0, columns, rows)
        return bytes(data)
    for marker, pos in _jpeg_segments(stream):
        if marker in set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC} or marker == 0xF7:
            struct.pack_into(">HH", data, pos + 5, rows, columns)
            return bytes(data)
    raise ValueError("no frame header found")


def raw_image(
    replace: dict[tuple[int, int], tuple[bytes, bytes]] | None = None,
    transfer_syntax: str = ExplicitVRLittleEndian,
    pixel_bytes: bytes | None = None,
) -> bytes:
    """A 4 x 4 8-bit MONOCHROME2 image written element by element, any element replaced by (VR, raw value)."""
    elements: dict[tuple[int, int], tuple[bytes, bytes]] = {
        (0x0028, 0x0002): (b"US", struct.pack("<H", 1)),
        (0x0028, 0x0004): (b"CS", b"MONOCHROME2 "),
        (0x0028, 0x0010): (b"US", struct.pack("<H", 4)),
        (0x0028, 0x0011): (b"US", struct.pack("<H", 4)),
        (0x0028, 0x0100): (b"US", struct.pack("<H", 8)),
        (0x0028, 0x0101): (b"US", struct.pack("<H", 8)),
        (0x0028, 0x0102): (b"US", struct.pack("<H", 7)),
        (0x0028, 0x0103): (b"US", struct.pack("<H", 0)),
        (0x7FE0, 0x0010): (b"OB", bytes(range(0, 160, 10)) if pixel_bytes is None else pixel_bytes),
    }
    elements.update(replace or {})
    body = b"".join(element(group, elem, vr, value) for (group, elem), (vr, value) in sorted(elements.items()))
    return part10(identity() + body, transfer_syntax)


class _Bits:
    """An MSB-first bit writer for JPEG entropy-coded segments (T.81 F.1.2.3: 1-bit padding, FF byte stuffing)."""

    def __init__(self) -> None:
        self.value, self.count, self.out = 0, 0, bytearray()

    def put(self, bits: int, length: int) -> None:
        self.value = (self.value << length) | bits
        self.count += length
        while self.count >= 8:
            self.count -= 8
            byte = (self.value >> self.count) & 0xFF
            self.out += b"\xff\x00" if byte == 0xFF else bytes([byte])
        self.value &= (1 << self.count) - 1

    def flush(self) -> bytes:
        if self.count:
            self.put((1 << (8 - self.count)) - 1, 8 - self.count)
        return bytes(self.out)


def _segment(marker: int, body: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(body) + 2) + body


def progressive_scan_bomb(rows: int, columns: int, bands: int = 63, precision: int = 8) -> bytes:
    """A valid progressive JPEG (SOF2, T.81 G.1) of a flat grey image in 1 + 14 x ``bands`` scans.

    Each AC coefficient 1..``bands`` gets its own spectral band and every successive-approximation
    step (Al 13 .. 0), all coded as end-of-band runs: a scan costs a few bytes but the decoder
    walks every block of the image once per scan (4096 x 4096, 63 bands: 64 kB, ~10 s to decode).
    """
    blocks = -(-rows // 8) * -(-columns // 8)
    assert blocks % 8 == 0, "the image must hold a multiple of 8 blocks"
    dqt = _segment(0xDB, b"\x00" + b"\x01" * 64)
    sof2 = _segment(0xC2, struct.pack(">BHHB", precision, rows, columns, 1) + b"\x01\x11\x00")
    dc_table = _segment(0xC4, b"\x00" + bytes([1] + [0] * 15) + b"\x00")  # category 0 -> code "0"
    ac_table = _segment(0xC4, b"\x10" + bytes([0, 2] + [0] * 14) + b"\xe0\x30")  # EOB14 "00", EOB3 "01"
    scans = [_segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + bytes(-(-blocks // 8))]  # DC: one "0" bit a block
    runs = _Bits()
    remaining = blocks
    while remaining:
        run, size, code = (32767, 14, 0b00) if remaining >= 32767 else (8, 3, 0b01)  # EOB14 or EOB3
        runs.put(code, 2)
        runs.put(run - (1 << size), size)
        remaining -= run
    ac_data = runs.flush()
    for k in range(1, bands + 1):
        for ah, al in [(0, 13)] + [(a + 1, a) for a in range(12, -1, -1)]:
            header = bytes([1, 1, 0x00, k, k, (ah << 4) | al])
            scans.append(_segment(0xDA, header) + ac_data)
    return b"\xff\xd8" + dqt + sof2 + dc_table + ac_table + b"".join(scans) + b"\xff\xd9"
