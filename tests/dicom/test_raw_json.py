"""Elements built from their bytes (app.dicom.raw_json) equal what pydicom's conversion builds.

The bundled files are compared in tests/dicom/test_header_json_fast_paths.py (its reference converts
every element through pydicom, so no fast path applies to it); here, the edge cases those files lack.
"""

from __future__ import annotations

import json
import struct

import pytest
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from app.dicom.header_json import header_json
from app.dicom.raw_json import raw_json

INLINE = 1024
PIXEL_SPACING = 0x00280030  # DS, VM 2
SLICE_THICKNESS = 0x00180050  # DS
INSTANCE_NUMBER = 0x00200013  # IS
REFERENCED_FRAMES = 0x00081160  # IS, VM 1-n
ROWS = 0x00280010  # US
SMALLEST = 0x00280106  # US or SS (ambiguous in the dictionary)
LUT_DESCRIPTOR = 0x00283002  # US or SS, rewritten by pydicom
PATIENT_NAME = 0x00100010  # PN
INSTITUTION = 0x00080080  # LO
STUDY_ID = 0x00200010  # SH
COMMENTS = 0x00204000  # LT
SOP_INSTANCE = 0x00080018  # UI
IMAGE_TYPE = 0x00080008  # CS
STUDY_DATE = 0x00080020  # DA
CHARSET = 0x00080005  # CS


def _dataset(tag: int, vr: str | None, value: bytes, charset: bytes | None = None, little: bool = True) -> Dataset:
    dataset = Dataset()
    if charset is not None:
        dataset[CHARSET] = RawDataElement(Tag(CHARSET), "CS", len(charset), charset, 0, False, True)
    dataset[tag] = RawDataElement(Tag(tag), vr, len(value), value, 0, vr is None, little)
    dataset.set_original_encoding(vr is None, little, charset.decode() if charset else None)
    return dataset


def _reference(dataset: Dataset) -> Dataset:
    """The same elements converted through pydicom (``Dataset.__getitem__``), so no fast path applies."""
    for tag in list(dataset.keys()):
        try:
            dataset[tag]
        except Exception:
            continue  # unconvertible: the header keeps it as UN bytes either way
    return dataset


def _same(tag: int, vr: str | None, value: bytes, charset: bytes | None = None, little: bool = True) -> bool:
    """header_json equals the reference; returns whether the fast path built it."""
    fast = header_json(_dataset(tag, vr, value, charset, little), INLINE)
    reference = header_json(_reference(_dataset(tag, vr, value, charset, little)), INLINE)
    assert json.dumps(fast, sort_keys=True) == json.dumps(reference, sort_keys=True)
    raw = _dataset(tag, vr, value, charset, little).get_item(tag, keep_deferred=True)
    assert isinstance(raw, RawDataElement)
    return raw_json(raw, charset is None) is not None


@pytest.mark.parametrize(
    "tag, vr, value",
    [
        (PIXEL_SPACING, "DS", b"0.661468\\0.661468 "),
        (PIXEL_SPACING, "DS", b" 1.5 \\ 2.25"),
        (PIXEL_SPACING, "DS", b"1\\\\2 "),
        (SLICE_THICKNESS, "DS", b"5.000000 \x00"),
        (SLICE_THICKNESS, "DS", b"-1e-3"),
        (SLICE_THICKNESS, "DS", b"1.00000000000000000001"),  # longer than 16: pydicom warns, keeps it
        (SLICE_THICKNESS, "DS", b"nan "),
        (SLICE_THICKNESS, "DS", b"1e400 "),
        (SLICE_THICKNESS, "DS", b"1_000 "),
        (SLICE_THICKNESS, "DS", b""),
        (SLICE_THICKNESS, "DS", b"  "),
        (INSTANCE_NUMBER, "IS", b"12"),
        (INSTANCE_NUMBER, "IS", b" +12 "),
        (INSTANCE_NUMBER, "IS", b"-0"),
        (INSTANCE_NUMBER, "IS", b""),
        (REFERENCED_FRAMES, "IS", b"1\\2\\3 "),
        (REFERENCED_FRAMES, "IS", b"1\\\\3"),
        (ROWS, "US", struct.pack("<H", 512)),
        (ROWS, "US", struct.pack("<3H", 1, 2, 65535)),
        (ROWS, "US", b""),
        (ROWS, None, struct.pack("<H", 512)),  # implicit VR: the dictionary's
        (0x00181310, "US", struct.pack("<4H", 0, 256, 256, 0)),
        (0x00201041, "DS", b"-12.5 "),
        (0x00280107, "SS", struct.pack("<h", -2000)),
        (0x00186022, "SL", struct.pack("<2l", -1, 2**31 - 1)),
        (0x00185022, "UL", struct.pack("<L", 2**32 - 1)),
        (0x00181318, "FL", struct.pack("<3f", 1.5, float("nan"), float("-inf"))),
        (0x00189087, "FD", struct.pack("<2d", 0.1, float("inf"))),
        (0x00180088, "FD", b""),
        (INSTITUTION, "LO", b"Hospital \\ Clinic "),
        (INSTITUTION, "LO", b"A\x00"),
        (INSTITUTION, "LO", b"\\"),
        (STUDY_ID, "SH", b" 42 "),
        (COMMENTS, "LT", b"one \\ two  \x00"),
        (0x00081030, "LO", b""),
        (SOP_INSTANCE, "UI", b"1.2.3.4\x00"),
        (SOP_INSTANCE, "UI", b"1.2.3\\1.2.4 \x00"),
        (IMAGE_TYPE, "CS", b"ORIGINAL\\PRIMARY\\AXIAL "),
        (IMAGE_TYPE, "CS", b" ORIGINAL \\"),
        (STUDY_DATE, "DA", b"20240102"),
        (0x00080030, "TM", b"101010.123 "),
        (0x0008002A, "DT", b"20240102101010 "),
        (0x00101010, "AS", b"042Y"),
        (0x00324000, "LT", b""),
        (0x00081040, "LO", b"x" * 70),  # longer than LO allows: pydicom warns, keeps it
    ],
)
def test_fast_elements_equal_pydicom(tag: int, vr: str | None, value: bytes) -> None:
    assert _same(tag, vr, value), "expected the fast path to build this one"


@pytest.mark.parametrize(
    "tag, vr, value",
    [
        (SLICE_THICKNESS, "DS", b"1A"),  # invalid: kept as UN bytes, as today
        (PIXEL_SPACING, "DS", b"1.5\\abc"),
        (PIXEL_SPACING, "DS", b"1.5\\  \\2"),  # a blank value in the middle
        (PIXEL_SPACING, "DS", b"1,5"),
        (INSTANCE_NUMBER, "IS", b"1.0"),  # pydicom's IS reads it as 1, written as "1.0"
        (INSTANCE_NUMBER, "IS", b"1.5"),  # an ISfloat
        (INSTANCE_NUMBER, "IS", b"99999999999999999999"),
        (INSTANCE_NUMBER, "IS", b"x"),
        (ROWS, "US", b"\x01\x02\x03"),  # wrong length: UN bytes
        (SMALLEST, None, struct.pack("<h", -5)),  # ambiguous VR: resolved by pydicom
        (LUT_DESCRIPTOR, "US", struct.pack("<3H", 4096, 0, 12)),
        (LUT_DESCRIPTOR, "SS", struct.pack("<3h", -4096, 0, 12)),
        (PATIENT_NAME, "PN", b"Doe^John"),
        (PATIENT_NAME, "PN", b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B=\x1b$B$d$^$@\x1b(B^\x1b$B$?$m$&\x1b(B"),
        (PATIENT_NAME, "PN", b"A^B\\C^D^^Dr"),
        (PATIENT_NAME, "PN", b"==Phonetic"),
        (INSTITUTION, "LO", "Klinik M\u00fcnchen".encode("latin-1")),  # not ASCII
        (0x00110010, "LO", b"PRIVATE CREATOR"),  # explicit VR: fast; below, implicit private: not
        (0x00111001, None, b"abcd"),
        (0x00080000, None, struct.pack("<L", 10)),
        (0x00090010, "UN", b"CREATOR"),
    ],
)
def test_other_elements_equal_pydicom(tag: int, vr: str | None, value: bytes) -> None:
    _same(tag, vr, value)


@pytest.mark.parametrize(
    "charset, value, fast",
    [
        (b"ISO_IR 100", b"Hospital", True),
        (b"ISO_IR 100", "M\u00fcnchen".encode("latin-1"), False),
        (b"ISO_IR 192", "M\u00fcnchen".encode(), False),
        (b"ISO_IR 192", b"Plain", True),
        (b"\\ISO 2022 IR 87", b"\x1b$B;3ED\x1b(B", False),  # ESC: the character set decides
        (b"\\ISO 2022 IR 87", b"Plain", False),  # a character set that may not read ASCII as ASCII
        (b"ISO_IR 13", b"A\\B", False),  # JIS X 0201: 0x5C may be a yen sign
        (b"ISO_IR 144", b"Plain", False),
    ],
)
def test_text_under_character_sets(charset: bytes, value: bytes, fast: bool) -> None:
    dataset = _dataset(INSTITUTION, "LO", value, charset)
    reference = header_json(_reference(_dataset(INSTITUTION, "LO", value, charset)), INLINE)
    assert json.dumps(header_json(dataset, INLINE), sort_keys=True) == json.dumps(reference, sort_keys=True)
    from app.dicom.raw_json import ascii_text

    raw = dataset.get_item(INSTITUTION, keep_deferred=True)
    assert isinstance(raw, RawDataElement)
    assert (raw_json(raw, ascii_text(dataset.original_character_set)) is not None) is fast


def test_big_endian_numbers() -> None:
    assert _same(ROWS, "US", struct.pack(">2H", 1, 513), little=False)
    assert _same(0x00181318, "FL", struct.pack(">f", 2.5), little=False)


@pytest.mark.parametrize(
    "charset, ascii_compatible",
    [("ISO_IR 100", True), ("ISO_IR 192", True), ("", True), ("ISO_IR 144", False), ("\\ISO 2022 IR 87", False)],
)
def test_a_parsed_files_character_set_is_judged_as_written(charset: str, ascii_compatible: bool) -> None:
    """dcmread keeps the character set as Python codec names (``["latin_1"]`` for ISO_IR 100), not as the
    defined terms: both must qualify, or every text element of such a file takes pydicom's slow path."""
    from io import BytesIO

    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from app.dicom.raw_json import ascii_text

    dataset = Dataset()
    if charset:
        dataset.SpecificCharacterSet = charset
    dataset.InstitutionName = "Hospital"
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=False)
    parsed = dcmread(BytesIO(buffer.getvalue()), force=True)
    assert ascii_text(parsed.original_character_set) is ascii_compatible
