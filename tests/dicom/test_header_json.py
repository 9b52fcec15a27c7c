"""The header stored in the index answers every element exactly as parsing the file does."""

import json

import pytest
from pydicom.tag import Tag

from app.dicom.attributes import describe
from app.dicom.header_json import describe_json, header_json, public_metadata
from app.dicom.ingest import read_header
from app.errors import ElementNotFound
from tests.conftest import sample

INLINE = 64 * 1024
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "rtstruct.dcm",
    "SC_rgb.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "image_dfl.dcm",
    "JPEG2000.dcm",
    "UN_sequence.dcm",
    "emri_small_jpeg_2k_lossless.dcm",
]


@pytest.mark.parametrize("name", FILES)
def test_every_element_matches_the_file(name: str) -> None:
    dataset = read_header(sample(name))
    header = json.loads(json.dumps(header_json(dataset, INLINE)))  # as stored: through JSON text
    answered = 0
    for key in header:
        tag = Tag(int(key, 16))
        from_index = describe_json(header, tag, INLINE)
        if from_index is None:
            assert "BulkDataURI" in header[key]
            continue
        assert from_index == describe(dataset, tag, INLINE), key
        answered += 1
    assert answered >= 5


def test_decimal_strings_keep_their_text_and_pixel_data_stays_out() -> None:
    header = header_json(read_header(sample("CT_small.dcm")), INLINE)
    assert header["00180050"] == {"vr": "DS", "Value": ["5.000000"]}  # PS3.18 F.2.3: DS as JSON String
    assert header["7FE00010"] == {"vr": "OW", "BulkDataURI": ""}
    assert "7FE00010" not in public_metadata(header)
    assert header["00020010"]["Value"] == ["1.2.840.10008.1.2.1"]


def test_absent_element() -> None:
    header = header_json(read_header(sample("CT_small.dcm")), INLINE)
    with pytest.raises(ElementNotFound):
        describe_json(header, Tag(0x00109999), INLINE)
