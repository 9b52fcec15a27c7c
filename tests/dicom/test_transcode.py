"""Re-encoding for a receiver (WADO-RS, DIMSE C-GET/C-MOVE): when it is needed, and that it keeps the instance."""

from __future__ import annotations

from io import BytesIO

import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit, RLELossless

from app.dicom.transcode import needs_decoding, to_explicit_little
from app.errors import UnsupportedEncoding
from tests.conftest import sample

UNCOMPRESSED = frozenset({str(ExplicitVRLittleEndian), str(ImplicitVRLittleEndian)})


def test_stored_bytes_go_as_they_are_when_accepted_or_both_uncompressed() -> None:
    assert not needs_decoding(str(RLELossless), frozenset({str(RLELossless)}))
    assert not needs_decoding(str(ImplicitVRLittleEndian), frozenset({str(ExplicitVRLittleEndian)}))
    assert needs_decoding(str(RLELossless), UNCOMPRESSED)
    with pytest.raises(UnsupportedEncoding):
        needs_decoding(str(RLELossless), frozenset({str(JPEGBaseline8Bit)}))


def test_decoding_keeps_the_sop_instance_uid_and_the_pixels() -> None:
    path = sample("MR_small_RLE.dcm")
    stored = pydicom.dcmread(path)
    sent = pydicom.dcmread(BytesIO(to_explicit_little(path, 10_000_000)))
    assert sent.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert sent.SOPInstanceUID == stored.SOPInstanceUID  # the same instance, only re-encoded
    assert sent.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID
    assert (sent.pixel_array == stored.pixel_array).all()
