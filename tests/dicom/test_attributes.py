import base64

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from app.dicom.attributes import describe
from app.errors import ElementNotFound
from tests.conftest import sample


@pytest.fixture
def ct() -> Dataset:
    return dcmread(sample("CT_small.dcm"), defer_size=1024)


def test_multi_valued_strings_join_with_one_space(ct: Dataset) -> None:
    attribute = describe(ct, Tag(0x0008, 0x0008), 1024)
    assert (attribute.keyword, attribute.vr) == ("ImageType", "CS")
    assert attribute.text == "[ORIGINAL PRIMARY AXIAL]"
    assert attribute.value == ["ORIGINAL", "PRIMARY", "AXIAL"]


def test_file_meta_is_answered(ct: Dataset) -> None:
    attribute = describe(ct, Tag(0x0002, 0x0010), 1024)
    assert attribute.keyword == "TransferSyntaxUID"
    assert attribute.text == "[1.2.840.10008.1.2.1]"


def test_numbers_keep_their_written_form() -> None:
    ds = Dataset()
    ds.add_new(0x00281050, "DS", ["0040.50", "1e2"])
    ds.add_new(0x00280010, "US", 1537)
    ds.add_new(0x00181310, "US", [0, 256, 256, 0])
    ds.add_new(0x00189087, "FD", 0.1)
    ds.add_new(0x00720074, "FL", 0.1)
    assert describe(ds, Tag(0x00281050), 64).text == "[0040.50 1e2]"
    assert describe(ds, Tag(0x00280010), 64).text == "[1537]"
    assert describe(ds, Tag(0x00181310), 64).text == "[0 256 256 0]"
    assert describe(ds, Tag(0x00189087), 64).text == "[0.1]"
    assert describe(ds, Tag(0x00720074), 64).text == "[0.1]"


def test_sequences_and_binary_are_summarised() -> None:
    ds = Dataset()
    ds.ReferencedImageSequence = Sequence([Dataset(), Dataset()])
    ds.add_new(0x00091010, "OB", b"\x01" * 1024)
    ds.file_meta = FileMetaDataset()
    assert describe(ds, Tag(0x00081140), 64).text == "[2 items]"
    small = describe(ds, Tag(0x00091010), 4096)
    assert small.text == "[1024 bytes]"
    assert small.value == {"InlineBinary": base64.b64encode(b"\x01" * 1024).decode()}
    assert describe(ds, Tag(0x00091010), 64).value is None


def test_large_pixel_data_is_never_loaded(ct: Dataset) -> None:
    attribute = describe(ct, Tag(0x7FE0, 0x0010), 1024)
    assert attribute.text == "[32768 bytes]"
    assert attribute.value is None


def test_person_name_and_padding(ct: Dataset) -> None:
    attribute = describe(ct, Tag(0x0010, 0x0010), 1024)
    assert attribute.text == "[CompressedSamples^CT1]"
    assert attribute.value == [{"Alphabetic": "CompressedSamples^CT1"}]


def test_absent_element(ct: Dataset) -> None:
    with pytest.raises(ElementNotFound):
        describe(ct, Tag(0x0010, 0x9999), 1024)
