import pytest
from pydicom.tag import Tag

from app.dicom.tags import _parse_remembered, format_tag, parse_tag
from app.errors import InvalidRequest


@pytest.mark.parametrize(
    "text",
    ["(0002,0002)", "(0002, 0002)", "0002,0002", "00020002", "(00020002)", " (0002,0002) ", "MediaStorageSOPClassUID"],
)
def test_spellings_of_one_tag(text: str) -> None:
    assert parse_tag(text) == Tag(0x0002, 0x0002)


def test_lower_case_hex_and_private_tags() -> None:
    assert parse_tag("(7fe0,0010)") == Tag(0x7FE0, 0x0010)
    assert parse_tag("(0009,10ab)") == Tag(0x0009, 0x10AB)


@pytest.mark.parametrize(
    "text", ["", "(0002,002)", "(gggg,eeee)", "0002-0002", "(0002,0002", "NotAKeyword", "x" * 500, "(0002,0002,0003)"]
)
def test_malformed_tags_are_refused(text: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_tag(text)


def test_format_tag() -> None:
    assert format_tag(Tag(0x7FE0, 0x0010)) == "(7FE0,0010)"


def test_only_short_texts_are_remembered() -> None:
    """Parses are remembered per text (a lookup parses twice); a long text, however it is padded, is not kept."""
    _parse_remembered.cache_clear()
    assert parse_tag(" " * 5000 + "Rows") == parse_tag("Rows") == Tag(0x00280010)
    with pytest.raises(InvalidRequest):
        parse_tag("R" * 5000)
    assert _parse_remembered.cache_info().currsize == 1
