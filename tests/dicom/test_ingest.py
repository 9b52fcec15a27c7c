"""Validation on the way in: Part 10 and bare data sets pass; anything cut short or not DICOM fails."""

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian

from app.dicom.ingest import inspect
from app.errors import InvalidDicom
from tests.api.encodings import EXPLICIT_LE, SECONDARY_CAPTURE, meta, part10
from tests.conftest import sample

LIMIT = 1 << 26


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "image_dfl.dcm",
        "JPEG2000.dcm",
        "SC_rgb_rle.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "UN_sequence.dcm",
        "rtplan.dcm",
    ],
)
def test_real_files_are_accepted(name: str) -> None:
    facts = inspect(sample(name), LIMIT)
    ds = dcmread(sample(name))
    assert facts.sop_instance_uid == str(ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID)


def test_bare_data_set_without_meta_is_accepted() -> None:
    facts = inspect(sample("rtstruct.dcm"), LIMIT)
    assert not facts.part10
    assert facts.sop_instance_uid


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "upload.bin"
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"x", "too short"),
        (b"hello, this is a text file\n" * 10, "neither"),
        (b"\x00" * 128 + b"DICM", "nothing after"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, "neither"),
    ],
)
def test_non_dicom_is_refused(tmp_path: Path, data: bytes, reason: str) -> None:
    with pytest.raises(InvalidDicom, match=reason):
        inspect(write(tmp_path, data), LIMIT)


@pytest.mark.parametrize("keep", [140, 200, 300, 700, 1000, 20000, -100, -1])
def test_truncated_files_are_refused(tmp_path: Path, keep: int) -> None:
    data = sample("CT_small.dcm").read_bytes()
    with pytest.raises(InvalidDicom, match="truncated"):
        inspect(write(tmp_path, data[:keep]), LIMIT)


def test_data_set_without_sop_identity_is_refused(tmp_path: Path) -> None:
    ds = Dataset()
    ds.PatientName = "Nobody"
    ds.Modality = "OT"
    path = tmp_path / "no_uids.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    with pytest.raises(InvalidDicom, match="SOP"):
        inspect(path, LIMIT)


def test_deeply_nested_sequences_are_refused(tmp_path: Path) -> None:
    ds = dcmread(sample("CT_small.dcm"))
    inner = Dataset()
    inner.PatientID = "x"
    for _ in range(100):
        outer = Dataset()
        outer.ReferencedImageSequence = [inner]
        inner = outer
    ds.ReferencedImageSequence = [inner]
    path = tmp_path / "deep.dcm"
    ds.save_as(path)
    with pytest.raises(InvalidDicom, match="nested"):
        inspect(path, LIMIT)


def test_deflate_bomb_is_refused() -> None:
    with pytest.raises(InvalidDicom, match="inflates"):
        inspect(sample("image_dfl.dcm"), 1000)


@pytest.mark.parametrize(
    ("name", "part10", "warning"),
    [
        ("SC_rgb_jpeg.dcm", True, "says Explicit VR but the data set is encoded in Implicit VR"),
        ("ExplVR_BigEndNoMeta.dcm", False, None),  # bare Explicit VR Big Endian: byte order detected as pydicom does
        ("UN_sequence.dcm", True, None),  # a UN sequence is Implicit VR inside by definition (PS3.5 §6.2.2)
        ("bad_sequence.dcm", True, "digits and dots"),
    ],
)
def test_files_pydicom_tolerates_are_accepted(name: str, part10: bool, warning: str | None) -> None:
    facts = inspect(sample(name), LIMIT)
    assert facts.part10 is part10
    ds = dcmread(sample(name), force=True)
    assert facts.sop_instance_uid == str(ds.get("SOPInstanceUID") or ds.file_meta.MediaStorageSOPInstanceUID)
    if warning is None:
        assert facts.warnings == ()
    else:
        assert any(warning in w for w in facts.warnings), facts.warnings


def test_deflated_image_frame_compression_is_not_a_deflated_data_set(tmp_path: Path) -> None:
    """1.2.840.10008.1.2.8.1 deflates frames only (PS3.5 A.4.11): the data set is plain Explicit VR LE."""
    data = bytearray(sample("CT_small.dcm").read_bytes())
    syntax = b"1.2.840.10008.1.2.1\x00"
    at = data.index(syntax)
    data[at - 2 : at + len(syntax)] = (
        len(b"1.2.840.10008.1.2.8.1\x00").to_bytes(2, "little") + b"1.2.840.10008.1.2.8.1\x00"
    )
    meta_length_at = 128 + 4 + 8
    meta_length = int.from_bytes(data[meta_length_at : meta_length_at + 4], "little") + 2
    data[meta_length_at : meta_length_at + 4] = meta_length.to_bytes(4, "little")
    facts = inspect(write(tmp_path, bytes(data)), LIMIT)
    assert facts.transfer_syntax_uid == "1.2.840.10008.1.2.8.1"
    assert facts.warnings == ()


def test_values_left_in_the_file_are_read_from_the_header(tmp_path: Path) -> None:
    """A value over the defer size (a 2,000-character Study Description, non-conformant but found in the
    wild) is parsed on demand from the memory map the header keeps, after ``inspect`` has returned, and
    the file can be removed meanwhile (as a refused or duplicate staged upload is)."""
    ds = dcmread(sample("CT_small.dcm"))
    ds.StudyDescription = "D" * 2000
    path = tmp_path / "long.dcm"
    ds.save_as(path)
    facts = inspect(path, LIMIT)
    path.unlink()
    assert facts.header.get_item(0x00081030, keep_deferred=True).value is None  # left in the file while parsing
    assert facts.header.StudyDescription == "D" * 2000


def test_wrong_lengths_are_named_in_tag_order(tmp_path: Path) -> None:
    """Each element whose length is no whole number of values is one warning, in the order of the tags."""
    sop = "1.2.3.4.5"
    dataset = EXPLICIT_LE.element(0x00080016, "UI", SECONDARY_CAPTURE.encode())
    dataset += EXPLICIT_LE.element(0x00080018, "UI", sop.encode())
    # out of order, as some writers leave them: Columns, Rows, Reference Pixel X0
    for tag, vr in ((0x00280011, "US"), (0x00280010, "US"), (0x00186020, "SL")):
        dataset += EXPLICIT_LE.element(tag, vr, b"\x01\x02\x03", pad=False)
    path = write(tmp_path, part10(meta(sop, ExplicitVRLittleEndian), dataset))
    warnings = [w for w in inspect(path, LIMIT).warnings if "not a multiple of" in w]
    assert [w.split(" ")[1] for w in warnings] == ["(0018,6020)", "(0028,0010)", "(0028,0011)"]
