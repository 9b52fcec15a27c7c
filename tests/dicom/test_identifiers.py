"""Identifying UIDs: any value that can identify is kept as written (less trailing padding); the warning
list is empty exactly when pydicom calls the UID valid (PS3.5 §9.1)."""

from __future__ import annotations

from io import BytesIO

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import RE_VALID_UID, UID

from app.dicom.identifiers import MAX_UID_LENGTH, identity
from app.errors import InvalidDicom
from tests.api.encodings import EXPLICIT_LE

UID_ALPHABET = "0123456789." * 4 + "abcdefABCDEF \\\x00\x01\x1f\x7f\x85é"


def with_instance_uid(value: str, **others: str) -> Dataset:
    """A data set parsed from bytes, as an upload is (values raw until converted)."""
    uids = {0x00080016: "1.2.840.10008.5.1.4.1.1.7", 0x00080018: value}
    uids |= {tag_for_keyword(keyword) or 0: uid for keyword, uid in others.items()}
    data = b"".join(EXPLICIT_LE.element(tag, "UI", uids[tag].encode("latin-1")) for tag in sorted(uids))
    return dcmread(BytesIO(data), force=True)


def pydicom_valid(value: str) -> bool:
    """``pydicom.uid.UID.is_valid`` on the exact text (the UID class itself strips surrounding whitespace)."""
    return len(value) <= 64 and RE_VALID_UID.fullmatch(value) is not None


@given(st.text(UID_ALPHABET, max_size=300))
def test_any_uid_is_kept_refused_or_warned_about(text: str) -> None:
    value = text.rstrip("\x00 ")
    try:
        found = identity(with_instance_uid(text))
    except InvalidDicom as exc:
        assert (
            not value
            or "\\" in value
            or any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
            or len(value) > MAX_UID_LENGTH
        ), exc.message
        return
    assert found.sop_instance_uid == value
    padded_with_spaces = text.rstrip("\x00") != value
    assert (found.warnings == ()) == (pydicom_valid(value) and not padded_with_spaces), found.warnings
    assert all(value not in w for w in found.warnings if len(value) > 12)  # values are never echoed


def test_data_set_uid_wins_over_meta_and_the_difference_is_named() -> None:
    ds = with_instance_uid("1.2.3")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.4")
    found = identity(ds)
    assert found.sop_instance_uid == "1.2.3"
    assert "differs" in found.warnings[0]


def test_meta_is_the_fallback_and_study_may_be_missing() -> None:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.1.3.10")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.5\x00")
    found = identity(ds)
    assert (found.sop_class_uid, found.sop_instance_uid, found.study_instance_uid) == (
        "1.2.840.10008.1.3.10",
        "1.2.5",
        "",
    )
    assert found.warnings == ()


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "SeriesInstanceUID"])
def test_study_and_series_uids_follow_the_same_rules(keyword: str) -> None:
    with pytest.raises(InvalidDicom, match="several values"):
        identity(with_instance_uid("1.2.3", **{keyword: "1.2.3\\1.2.4"}))
    warnings = identity(with_instance_uid("1.2.3", **{keyword: "ABCDEF"})).warnings
    assert any("digits and dots" in w for w in warnings)
