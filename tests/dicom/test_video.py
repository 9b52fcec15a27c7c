"""Video transfer syntaxes (PS3.5 8.2.5-8.2.7) decode frame by frame through PyAV; bombs are refused from the stream.

Videos are generated here with PyAV's encoders (solid colours with a moving bar, see
:mod:`tests.dicom.video_builders`) and compared with what was encoded, within codec tolerance.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread, uid
from pydicom.dataelem import RawDataElement

from app.dicom import video
from app.dicom.pixels import check_before_decoding, decode_frame
from app.dicom.video import VIDEO_SYNTAXES
from app.dicom.video_streams import VideoCodec, parameter_sets
from app.errors import InvalidRequest, NotRenderable
from tests.dicom.video_builders import ENCODERS, encode, frames_of, h264_sps, mpeg2_declaring, video_dicom

BUDGET = 1 << 24
TOLERANCE = 8.0  # mean absolute error per sample: 4:2:0 chroma at the bar's edges, quantisation


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "video.dcm"
    path.write_bytes(data)
    return path


def closest(decoded: np.ndarray, expected: list[np.ndarray]) -> tuple[int, float]:
    """Which expected frame the decoded one is nearest to, and its mean absolute error."""
    errors = [float(np.abs(decoded.astype(np.int32) - frame.astype(np.int32)).mean()) for frame in expected]
    return int(np.argmin(errors)), min(errors)


@pytest.mark.parametrize("fragment_size", [None, 100], ids=["one-fragment", "fragmented"])
@pytest.mark.parametrize("syntax", sorted(ENCODERS))
def test_every_frame_decodes_to_what_was_encoded(tmp_path: Path, syntax: str, fragment_size: int | None) -> None:
    frames = frames_of()
    path = write(tmp_path, video_dicom(syntax, encode(syntax, frames), len(frames), fragment_size=fragment_size))
    header = dcmread(path, defer_size=1024)
    for index in range(len(frames)):
        decoded = decode_frame(path, header, index, BUDGET)
        assert decoded.shape == (48, 64, 3) and decoded.dtype == np.uint8
        nearest, error = closest(decoded, frames)
        assert nearest == index and error < TOLERANCE, (index, nearest, error)


@pytest.mark.parametrize("syntax", sorted(ENCODERS))
def test_sequence_parameters_give_the_displayed_size(syntax: str) -> None:
    """70 x 38 is no multiple of a macroblock: the cropping rectangle / conformance window is applied."""
    stream = encode(syntax, frames_of(rows=38, columns=70)[:1])
    headers = list(parameter_sets(VIDEO_SYNTAXES[syntax].codec, stream))
    assert headers and all((h.rows, h.columns, h.components) == (38, 70, 3) for h in headers)


def test_every_video_syntax_is_known() -> None:
    assert set(VIDEO_SYNTAXES) == set(uid.MPEGTransferSyntaxes)
    assert {VIDEO_SYNTAXES[s].codec for s in VIDEO_SYNTAXES} == set(VideoCodec)


def test_the_budget_counts_one_picture_not_every_frame(tmp_path: Path) -> None:
    frames = frames_of()
    path = write(tmp_path, video_dicom(uid.MPEG4HP41, encode(uid.MPEG4HP41, frames), len(frames)))
    one_picture = 48 * 64 * 3
    assert closest(decode_frame(path, dcmread(path), 4, one_picture), frames)[0] == 4
    with pytest.raises(NotRenderable, match="more than the limit"):
        check_before_decoding(path, dcmread(path), 0, one_picture - 1)


def test_frame_beyond_the_stream_is_a_bad_request(tmp_path: Path) -> None:
    frames = frames_of()
    path = write(tmp_path, video_dicom(uid.MPEG2MPML, encode(uid.MPEG2MPML, frames), frames=9))
    header = dcmread(path)
    with pytest.raises(InvalidRequest, match="frame 7 is out of range: the video stream holds 5"):
        decode_frame(path, header, 6, BUDGET)
    with pytest.raises(InvalidRequest, match="this file has 9"):
        decode_frame(path, header, 9, BUDGET)


@pytest.mark.parametrize(
    ("syntax", "stream"),
    [
        (uid.MPEG4HP41, h264_sps(1 << 16, 1 << 16)),  # 1,048,576 x 1,048,576 in 20 bytes
        (uid.MPEG4HP41, h264_sps(4096, 4096)),  # 65536 x 65536
        (uid.MPEG2MPML, mpeg2_declaring(encode(uid.MPEG2MPML, frames_of()[:2]), 16383, 16383)),
    ],
    ids=["h264-2^20", "h264-65536", "mpeg2-16383"],
)
def test_an_absurd_declared_size_is_refused_before_decoding(tmp_path: Path, syntax: str, stream: bytes) -> None:
    path = write(tmp_path, video_dicom(syntax, stream, frames=1))
    with pytest.raises(NotRenderable, match=r"declares .* pixels, more than the limit"):
        check_before_decoding(path, dcmread(path), 0, BUDGET)
    with pytest.raises(NotRenderable, match="declares"):
        decode_frame(path, dcmread(path), 0, BUDGET)


def test_a_stream_larger_than_the_header_is_refused(tmp_path: Path) -> None:
    stream = encode(uid.HEVCMP51, frames_of(rows=256, columns=320)[:1])
    path = write(tmp_path, video_dicom(uid.HEVCMP51, stream, frames=1))  # header: 64 x 48
    with pytest.raises(NotRenderable, match=r"declares 320 x 256 pixels, more than the header's Columns x Rows"):
        check_before_decoding(path, dcmread(path), 0, BUDGET)


def test_a_later_parameter_set_is_checked_while_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The head of the stream is fine; a bomb further on is caught fragment by fragment, before FFmpeg sees it."""
    frames = frames_of()
    stream = encode(uid.MPEG4HP41, frames)
    stream += b"\x00" * (len(stream) % 2)  # trailing_zero_8bits (H.264 B.1.1): fragments of even length
    monkeypatch.setattr(video, "HEAD_BYTES", len(stream))  # the head check reads the first fragment only
    bomb = h264_sps(4096, 4096)
    path = write(tmp_path, video_dicom(uid.MPEG4HP41, stream + bomb + stream, frames=10, fragment_size=len(stream)))
    check_before_decoding(path, dcmread(path), 0, BUDGET)
    assert closest(decode_frame(path, dcmread(path), 0, BUDGET), frames)[0] == 0  # stops before the bomb
    with pytest.raises(NotRenderable, match="declares 65536 x 65536"):
        decode_frame(path, dcmread(path), 8, BUDGET)


@pytest.mark.parametrize("syntax", sorted(ENCODERS))
def test_a_corrupt_stream_is_not_renderable(tmp_path: Path, syntax: str) -> None:
    noise = np.random.default_rng(7).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    path = write(tmp_path, video_dicom(syntax, noise.replace(b"\x00\x00\x01", b"\x00\x01\x01"), frames=1))
    with pytest.raises(NotRenderable):
        decode_frame(path, dcmread(path), 0, BUDGET)


def test_a_truncated_stream_shows_what_it_holds(tmp_path: Path) -> None:
    frames = frames_of()
    stream = encode(uid.MPEG2MPML, frames)
    path = write(tmp_path, video_dicom(uid.MPEG2MPML, stream[:40], frames=5))
    with pytest.raises(NotRenderable):
        decode_frame(path, dcmread(path), 0, BUDGET)


def test_one_large_fragment_is_read_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-fragmentable syntax keeps the whole video in one fragment: it is read, checked and fed in pieces."""
    frames = frames_of()
    stream = encode(uid.MPEG4HP41, frames)
    path = write(tmp_path, video_dicom(uid.MPEG4HP41, stream, len(frames)))
    monkeypatch.setattr(video, "CHUNK_BYTES", 37)
    header = dcmread(path, defer_size=1024)
    with path.open("rb") as source:
        raw = header.get_item("PixelData", keep_deferred=True)
        assert isinstance(raw, RawDataElement)
        source.seek(raw.value_tell)
        pieces = list(video.fragments(source))
    assert max(map(len, pieces)) == 37 and b"".join(pieces) in (stream, stream + b"\x00")
    for index in (0, 4):
        assert closest(decode_frame(path, header, index, BUDGET), frames)[0] == index


def test_fragments_end_at_the_delimiter_and_refuse_a_cut_or_foreign_item() -> None:
    item = b"\xfe\xff\x00\xe0"
    bitstream = item + b"\x00" * 4 + item + b"\x04\x00\x00\x00abcd" + item + b"\x02\x00\x00\x00ef"
    delimited = bitstream + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00" + b"trailing data"
    assert b"".join(video.fragments(io.BytesIO(delimited))) == b"abcdef"
    with pytest.raises(NotRenderable, match="cut short"):
        list(video.fragments(io.BytesIO(bitstream[:-1])))
    with pytest.raises(NotRenderable, match="could not be read"):
        list(video.fragments(io.BytesIO(bitstream + b"\x10\x00\x10\x00\x00\x00\x00\x00")))
