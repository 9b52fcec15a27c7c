"""Validation on the way in: Part 10 and bare data sets pass; anything cut short or not DICOM fails."""

from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from app.dicom.ingest import inspect
from app.errors import InvalidDicom
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
