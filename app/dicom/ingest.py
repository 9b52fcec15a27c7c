"""What we check on the way in: is this a DICOM file we can keep, and which instance is it?

Accepted (PS3.10 §7.1): a Part 10 file (128-byte preamble, ``DICM``, File Meta group),
or a bare data set without preamble and file meta, as older devices write, provided it
parses and carries SOP Class and SOP Instance UIDs. The whole structure is walked first
(:mod:`app.dicom.structure`) so that a file cut short is refused rather than kept.

Lenient where pydicom and DCMTK are (ARCHITECTURE rule 12): the encoding is read as found
(Implicit VR where the syntax says Explicit, or the reverse; a File Meta group in Implicit VR or
with a wrong group length; no Transfer Syntax UID at all), non-conformant UIDs are kept as the
identifiers they are, and values of the wrong length are kept as ``UN`` bytes. Each is named in
:attr:`IngestFacts.warnings`, which the upload answer carries.
"""

from __future__ import annotations

import mmap
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, cast

import pydicom.uid
from pydicom import dcmread
from pydicom.dataset import Dataset

from app.dicom.identifiers import MAX_UID_LENGTH, Identity, identity
from app.dicom.lengths import wrong_lengths
from app.dicom.preamble import check_preamble
from app.dicom.structure import KNOWN_VRS, Encoding, WalkReport, walk, walk_group
from app.errors import InvalidDicom

PREAMBLE = 128
MAGIC = b"DICM"
IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED = "1.2.840.10008.1.2.1.99"  # Deflated Explicit VR Little Endian: the whole data set is deflated (PS3.5 A.5)
META_GROUP_LENGTH, TRANSFER_SYNTAX = 0x00020000, 0x00020010
#: Values longer than this are left in the file while parsing and read when asked for.
HEADER_DEFER_BYTES = 1024


@dataclass(frozen=True)
class IngestFacts:
    """What identifies an accepted file, and what about it was not conformant."""

    sop_class_uid: str
    sop_instance_uid: str
    transfer_syntax_uid: str
    part10: bool
    #: The parsed header, bulk values left on disk (for the index); not part of equality.
    header: Dataset = field(default_factory=Dataset, compare=False, repr=False)
    study_instance_uid: str = ""
    series_instance_uid: str = ""
    #: What was non-conformant but accepted, in words (no values: they may be patient data).
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Structure:
    """The outcome of the structure walk."""

    transfer_syntax_uid: str
    part10: bool
    warnings: tuple[str, ...]


def _encoding_of(transfer_syntax: str) -> Encoding:
    """The encoding a transfer syntax declares (PS3.5 §10, Annex A), as pydicom's reader maps it."""
    if transfer_syntax == IMPLICIT_LE:
        return Encoding(explicit=False, little_endian=True)
    if transfer_syntax == EXPLICIT_BE:
        return Encoding(explicit=True, little_endian=False)
    for private in pydicom.uid.PrivateTransferSyntaxes:
        if private == transfer_syntax:
            return Encoding(explicit=not private.is_implicit_VR, little_endian=private.is_little_endian)
    return Encoding(explicit=True, little_endian=True)  # every other syntax is Explicit VR Little Endian


def _guess_encoding(buf: mmap.mmap, pos: int) -> tuple[str, Encoding]:
    """No Transfer Syntax UID: pydicom's guess from the first element (a VR there means Explicit VR,
    and a group that reads as 1024 or more in little endian means big endian)."""
    if pos + 6 > len(buf) or bytes(buf[pos + 4 : pos + 6]) not in KNOWN_VRS:
        return IMPLICIT_LE, Encoding(explicit=False, little_endian=True)
    if int.from_bytes(buf[pos : pos + 2], "little") >= 1024:
        return EXPLICIT_BE, Encoding(explicit=True, little_endian=False)
    return EXPLICIT_LE, Encoding(explicit=True, little_endian=True)


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


def _encoding_warnings(declared: Encoding, report: WalkReport, guessed: bool) -> list[str]:
    """What the data set's encoding did differently from what its transfer syntax says (PS3.5 §7.1)."""
    found = []
    if report.explicit != declared.explicit and not guessed:
        said, was = ("Explicit", "Implicit") if declared.explicit else ("Implicit", "Explicit")
        found.append(f"the transfer syntax says {said} VR but the data set is encoded in {was} VR; it is read as found")
    if report.implicit_items:
        found.append(
            f"{report.implicit_items} sequence item(s) of the Explicit VR data set are encoded in Implicit VR; "
            "they are read as found"
        )
    if report.implicit_elements:
        found.append(
            f"{report.implicit_elements} element(s) of the Explicit VR data set carry no VR; they are read as "
            "Implicit VR"
        )
    if report.unknown_vrs:
        found.append(
            f"elements with VRs no edition of the standard defines ({', '.join(sorted(report.unknown_vrs))}) "
            "are kept as raw bytes"
        )
    return found


def _meta(buf: mmap.mmap, start: int) -> tuple[int, str | None, list[str]]:
    """Walk the File Meta group at ``start``: where it ends, its Transfer Syntax UID, and what was odd."""
    end, report = walk_group(buf, start, 0x0002, capture=frozenset({META_GROUP_LENGTH, TRANSFER_SYNTAX}))
    if end == start:
        raise InvalidDicom("the file has no File Meta Information after its preamble")
    notes = []
    if not report.explicit or report.implicit_elements:
        notes.append("the File Meta Information is not Explicit VR Little Endian (PS3.10 §7.1); it is read as found")
    if META_GROUP_LENGTH in report.values:
        at, length = report.values[META_GROUP_LENGTH]
        group_end = at + length
        if length == 4 and int.from_bytes(buf[at : at + 4], "little") != end - group_end:
            notes.append(
                "the File Meta Information Group Length (0002,0000) does not match the group; the group is read "
                "to its last element"
            )
    syntax = None
    if TRANSFER_SYNTAX in report.values:
        at, length = report.values[TRANSFER_SYNTAX]
        syntax = bytes(buf[at : at + length]).rstrip(b"\0 ").decode("latin-1") or None
        if syntax is not None and len(syntax) > MAX_UID_LENGTH:
            raise InvalidDicom(f"the Transfer Syntax UID (0002,0010) is longer than {MAX_UID_LENGTH} characters")
    return end, syntax, notes


def _check_structure(buf: mmap.mmap, max_inflated: int) -> Structure:
    """Walk the whole file; return its transfer syntax, whether it is Part 10, and what was odd."""
    size = len(buf)
    part10 = size >= PREAMBLE + 4 and buf[PREAMBLE : PREAMBLE + 4] == MAGIC
    notes: list[str] = []
    start, syntax = 0, None
    if part10:
        if size == PREAMBLE + 4:
            raise InvalidDicom("the file holds a DICOM preamble and nothing after it")
        check_preamble(bytes(buf[:PREAMBLE]))
        start, syntax, notes = _meta(buf, PREAMBLE + 4)
    else:
        if size < 8:
            raise InvalidDicom("the file is too short to be DICOM")
        group = int.from_bytes(buf[0:2], "little")
        if bytes(buf[4:6]) in KNOWN_VRS and group >= 1024:  # big endian without File Meta: read the group so
            group = int.from_bytes(buf[0:2], "big")
        if group not in (0x0002, 0x0004, 0x0008) and not 0x0008 <= group <= 0x0010:
            raise InvalidDicom("the file is neither a DICOM Part 10 file nor a DICOM data set")
        if group == 0x0002:  # File Meta without preamble
            start, syntax, notes = _meta(buf, 0)
    guessed = syntax is None
    if syntax is None:
        syntax, declared = _guess_encoding(buf, start)
        if start:
            notes.append(
                "the File Meta Information has no Transfer Syntax UID (0002,0010); the encoding was "
                "detected from the data set"
            )
    else:
        declared = _encoding_of(syntax)
    if syntax == DEFLATED:
        report = walk(_inflate(buf[start:], max_inflated), 0, declared)
    else:
        report = walk(buf, start, declared)
    notes.extend(_encoding_warnings(declared, report, guessed))
    return Structure(syntax, part10, tuple(notes))


def read_header(path: Path) -> Dataset:
    """Parse everything but bulk values (they stay on disk and are read on demand)."""
    return dcmread(path, force=True, defer_size=HEADER_DEFER_BYTES)


def _map(path: Path) -> mmap.mmap:
    with path.open("rb") as handle:
        return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)


def inspect(path: Path, max_inflated: int) -> IngestFacts:
    """Validate the file at ``path`` as DICOM and return its identity, or raise :class:`InvalidDicom`.

    The header is parsed from the same memory map the structure walk read, and its bulk values are
    read from that map on demand (it closes when the header is freed). A file object would cost
    a ``lseek`` system call per element (pydicom asks ``tell()`` for each), each of which hands the
    GIL to a waiting thread (a small CT slice, one worker at c8: 260 -> 84 context switches per upload).
    """
    size = path.stat().st_size
    if size == 0:
        raise InvalidDicom("the file is empty")
    buf = _map(path)
    try:
        structure = _check_structure(buf, max_inflated)
        # mmap.seek returns None where pydicom's protocol says int; the reader never uses the result
        header = dcmread(cast(BinaryIO, buf), force=True, defer_size=HEADER_DEFER_BYTES)
        found: Identity = identity(header)
        lengths = wrong_lengths(header)
    except InvalidDicom:
        buf.close()
        raise
    except (MemoryError, RecursionError):
        buf.close()
        raise InvalidDicom("the data set is too complex to parse") from None
    except Exception as exc:  # pydicom raises many types on malformed values
        buf.close()
        raise InvalidDicom(f"the data set could not be parsed: {exc}") from None
    return IngestFacts(
        found.sop_class_uid,
        found.sop_instance_uid,
        structure.transfer_syntax_uid,
        structure.part10,
        header,
        found.study_instance_uid,
        found.series_instance_uid,
        structure.warnings + found.warnings + tuple(lengths),
    )
