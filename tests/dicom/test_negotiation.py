"""Accept negotiation of PS3.18 8.7: q weights, quoted parameters, multipart types, defaults."""

from __future__ import annotations

import pytest

from app.dicom.negotiation import (
    FrameEncoding,
    check_json,
    frame_encoding,
    parse_accept,
    rendered_type,
    retrieve_syntax,
    zip_range,
)
from app.errors import NotAcceptable

JPEG_LS = "1.2.840.10008.1.2.4.80"
EXPLICIT = "1.2.840.10008.1.2.1"


def test_weights_order_the_ranges_and_zero_removes_one() -> None:
    ranges = parse_accept('image/png;q=0.5, image/jpeg, multipart/related; type="a/b, c"; q=0, */*;q=0.1')
    assert [r.media_type for r in ranges] == ["image/jpeg", "image/png", "*/*"]


@pytest.mark.parametrize(
    ("accept", "syntax"),
    [
        (None, EXPLICIT),
        ('multipart/related; type="application/dicom"', EXPLICIT),
        ("multipart/related; type=application/dicom; transfer-syntax=*", "*"),
        (
            'multipart/related; type="application/dicom"; transfer-syntax="1.2.840.10008.1.2.4.50"',
            "1.2.840.10008.1.2.4.50",
        ),
        ("*/*", EXPLICIT),
    ],
)
def test_retrieve_syntax(accept: str | None, syntax: str) -> None:
    assert retrieve_syntax(parse_accept(accept)) == syntax


@pytest.mark.parametrize(
    ("accept", "zipped"),
    [
        ("application/zip", True),
        ("application/zip; transfer-syntax=*", True),
        ('image/png, application/zip, multipart/related; type="application/dicom"', True),
        ('multipart/related; type="application/dicom", application/zip', False),
        ("application/zip; q=0.5, */*", False),
        ("*/*", False),
        (None, False),
        ('multipart/related; type="application/zip"', False),  # not a ZIP payload: multipart of ZIPs
    ],
)
def test_a_zip_is_sent_only_when_preferred_to_multipart(accept: str | None, zipped: bool) -> None:
    """PS3.18 8.7.3 (Supplement 211): ``application/zip`` is an alternative to the multipart default."""
    assert (zip_range(parse_accept(accept)) is not None) is zipped


def test_retrieve_refuses_what_is_not_dicom() -> None:
    with pytest.raises(NotAcceptable):
        retrieve_syntax(parse_accept("image/png"))


@pytest.mark.parametrize(
    ("accept", "stored", "encoding"),
    [
        ('multipart/related; type="*/*"', JPEG_LS, FrameEncoding.STORED),
        (None, JPEG_LS, FrameEncoding.STORED),
        ('multipart/related; type="image/x-jls"', JPEG_LS, FrameEncoding.STORED),
        ('multipart/related; type="application/octet-stream"', JPEG_LS, FrameEncoding.DECODED),
        (
            "multipart/related; type=application/octet-stream; transfer-syntax=*",
            JPEG_LS,
            FrameEncoding.STORED_AS_OCTETS,
        ),
        ('multipart/related; type="image/*"; transfer-syntax=*', JPEG_LS, FrameEncoding.STORED),
        ('multipart/related; type="application/octet-stream"', EXPLICIT, FrameEncoding.STORED),
        (
            'multipart/related; type="image/jp2"; q=0.9, multipart/related; type="image/jls"',
            JPEG_LS,
            FrameEncoding.STORED,
        ),
    ],
)
def test_frame_encoding(accept: str | None, stored: str, encoding: FrameEncoding) -> None:
    assert frame_encoding(parse_accept(accept), stored) is encoding


def test_frames_in_a_type_they_are_not_stored_in_are_not_acceptable() -> None:
    with pytest.raises(NotAcceptable, match="image/jls"):
        frame_encoding(parse_accept('multipart/related; type="image/jp2"'), JPEG_LS)
    with pytest.raises(NotAcceptable):
        frame_encoding(parse_accept('multipart/related; type="image/jls"'), EXPLICIT)


def test_rendered_and_json() -> None:
    assert rendered_type(parse_accept(None)) == "image/jpeg"
    assert rendered_type(parse_accept("image/png, image/jpeg;q=0.5")) == "image/png"
    check_json(parse_accept("application/json"))
    with pytest.raises(NotAcceptable):
        check_json(parse_accept("application/dicom+xml"))
