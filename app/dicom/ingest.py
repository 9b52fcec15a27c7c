"""What we check on the way in: is this a DICOM file we can keep, and which instance is it?

Accepted (PS3.10 §7.1): a Part 10 file (128-byte preamble, ``DICM``, File Meta group),
or a bare data set without preamble and file meta, as older devices write, provided it
parses and carries SOP Class and SOP Instance UIDs. The whole structure is walked first
(:mod:`app.dicom.structure`) so that a file cut short is refused rather than kept.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import UID

from app.dicom.preamble import check_preamble
from app.dicom.structure import KNOWN_VRS, Encoding, walk, walk_group
from app.errors import InvalidDicom

PREAMBLE = 128
MAGIC = b"DICM"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")  # Deflated Explicit VR LE, Deflated Image Frame


@dataclass(frozen=True)
class IngestFacts:
    """What identifies an accepted file."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    part10: bool
    #: The parsed header, bulk values left on disk (for the index); not part of equality.
    header: Dataset = field(default_factory=Dataset, compare=False, repr=False)


def _encoding_of(transfer_syntax: str) -> Encoding:
    if transfer_syntax == IMPLICIT_LE:
        return Encoding(explicit=False, little_endian=True)
    if transfer_syntax == EXPLICIT_BE:
        return Encoding(explicit=True, little_endian=False)
    return Encoding(explicit=True, little_endian=True)


def _transfer_syntax_from_meta(buf: mmap.mmap, start: int, end: int) -> str:
    """Read (0002,0010) out of the already-walked File Meta group."""
    pos = start
    while pos + 8 <= end:
        group, element = int.from_bytes(buf[pos : pos + 2], "little"), int.from_bytes(buf[pos + 2 : pos + 4], "little")
        vr = bytes(buf[pos + 4 : pos + 6])
        long_form = vr not in KNOWN_VRS or vr in (b"OB", b"OW", b"SQ", b"UN", b"UT", b"UC", b"UR")
        length = int.from_bytes(buf[pos + 8 : pos + 12] if long_form else buf[pos + 6 : pos + 8], "little")
        value_at = pos + (12 if long_form else 8)
        if (group, element) == (0x0002, 0x0010):
            return bytes(buf[value_at : value_at + length]).rstrip(b"\0 ").decode("ascii", "replace")
        pos = value_at + length
    raise InvalidDicom("the File Meta Information has no Transfer Syntax UID (0002,0010)")


def _inflate(data: bytes, limit: int) -> bytes:
    """Inflate a deflated data set (PS3.5 A.5), refusing one that grows past ``limit`` bytes."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidDicom(f"the deflated data set is corrupt: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise InvalidDicom(f"the deflated data set inflates to more than {limit} bytes")
    return out


def _check_structure(buf: mmap.mmap, max_inflated: int) -> tuple[str, bool]:
    """Walk the whole file; return its transfer syntax and whether it is Part 10."""
    size = len(buf)
    if size >= PREAMBLE + 4 and buf[PREAMBLE : PREAMBLE + 4] == MAGIC:
        if size == PREAMBLE + 4:
            raise InvalidDicom("the file holds a DICOM preamble and nothing after it")
        check_preamble(bytes(buf[:PREAMBLE]))
        meta_end = walk_group(buf, PREAMBLE + 4, 0x0002)
        if meta_end == PREAMBLE + 4:
            raise InvalidDicom("the file has no File Meta Information after its preamble")
        syntax = _transfer_syntax_from_meta(buf, PREAMBLE + 4, meta_end)
        if syntax in DEFLATED:
            walk(_inflate(buf[meta_end:], max_inflated), 0, _encoding_of(syntax))
        else:
            walk(buf, meta_end, _encoding_of(syntax))
        return syntax, True
    if size < 8:
        raise InvalidDicom("the file is too short to be DICOM")
    group = int.from_bytes(buf[0:2], "little")
    if group not in (0x0002, 0x0004, 0x0008) and not 0x0008 <= group <= 0x0010:
        raise InvalidDicom("the file is neither a DICOM Part 10 file nor a DICOM data set")
    explicit = bytes(buf[4:6]) in KNOWN_VRS
    start = 0
    syntax = "1.2.840.10008.1.2.1" if explicit else IMPLICIT_LE
    if group == 0x0002:  # File Meta without preamble
        start = walk_group(buf, 0, 0x0002)
        syntax = _transfer_syntax_from_meta(buf, 0, start)
    walk(buf, start, Encoding(explicit=explicit or group == 0x0002, little_endian=True))
    return syntax, False


def _identity(header: Dataset) -> tuple[str, str]:
    meta = getattr(header, "file_meta", None) or Dataset()
    sop_class = str(header.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "").strip()
    sop_instance = str(header.get("SOPInstanceUID") or meta.get("MediaStorageSOPInstanceUID") or "").strip()
    if not sop_class or not sop_instance:
        raise InvalidDicom("the data set carries no SOP Class UID and SOP Instance UID: it is not a DICOM instance")
    for uid in (sop_class, sop_instance):
        if not UID(uid).is_valid:
            raise InvalidDicom(f"the data set carries an invalid UID {uid[:64]!r}")
    return sop_class, sop_instance


def read_header(path: Path) -> Dataset:
    """Parse everything but bulk values (they stay on disk and are read on demand)."""
    return dcmread(path, force=True, defer_size=1024)


def inspect(path: Path, max_inflated: int) -> IngestFacts:
    """Validate the file at ``path`` as DICOM and return its identity, or raise :class:`InvalidDicom`."""
    size = path.stat().st_size
    if size == 0:
        raise InvalidDicom("the file is empty")
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        syntax, part10 = _check_structure(buf, max_inflated)
    try:
        header = read_header(path)
    except (MemoryError, RecursionError):
        raise InvalidDicom("the data set is too complex to parse") from None
    except Exception as exc:  # pydicom raises many types on malformed values
        raise InvalidDicom(f"the data set could not be parsed: {exc}") from None
    sop_class, sop_instance = _identity(header)
    return IngestFacts(sop_class, sop_instance, syntax, part10, header)
