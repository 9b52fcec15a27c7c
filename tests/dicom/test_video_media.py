"""The stored video as browser media: MPEG-2 as stored (video/mpeg), H.264 and HEVC remuxed into MP4 (video/mp4)."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
from pydicom import dcmread, uid

from app.dicom.pixels import video_file
from app.errors import NotRenderable
from tests.conftest import sample
from tests.dicom.video_builders import ENCODERS, encode, frames_of, h264_sps, video_dicom

BUDGET = 1 << 24
#: Twelve distinct colours: B-frames (coded out of display order) must come back in display order.
COLOURS = tuple((i * 20, 255 - i * 20, (i * 50) % 256) for i in range(12))


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "video.dcm"
    path.write_bytes(data)
    return path


def played(mp4: bytes) -> tuple[list[np.ndarray], float, str]:
    """Every picture of an MP4 file as a player decodes it, its duration in seconds, and its codec.

    A player shows pictures at their presentation times: those must rise one Frame Time (40 ms) a picture.
    """
    with av.open(io.BytesIO(mp4), "r", format="mp4") as container:
        stream = container.streams.video[0]
        decoded = list(container.decode(stream))
        times = [float(frame.time) for frame in decoded if frame.time is not None]
        assert len(times) == len(decoded)
        assert np.diff(times) == pytest.approx([0.040] * (len(times) - 1), abs=0.001)
        pictures = [frame.to_ndarray(format="rgb24").astype(np.int32) for frame in decoded]
        assert container.duration is not None
        return pictures, container.duration / 1_000_000, stream.codec_context.name


@pytest.mark.parametrize("syntax", [uid.MPEG4HP41, uid.HEVCMP51])
def test_h264_and_hevc_play_as_mp4_in_display_order(
    tmp_path: Path, syntax: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, pix_fmt, options = ENCODERS[syntax]
    reordering = {"preset": "medium", "bf": "3"} if name == "libx264" else {**options, "x265-params": "bframes=3"}
    monkeypatch.setitem(ENCODERS, syntax, (name, pix_fmt, reordering))
    frames = frames_of(COLOURS)
    path = write(tmp_path, video_dicom(syntax, encode(syntax, frames), len(frames), fragment_size=300))
    content, media_type = video_file(path, dcmread(path, defer_size=1024), BUDGET)
    assert media_type == "video/mp4" and content[4:8] == b"ftyp"
    pictures, seconds, codec = played(content)
    assert codec == ("h264" if syntax == uid.MPEG4HP41 else "hevc")
    assert seconds == pytest.approx(len(frames) * 0.040, abs=0.041)  # Frame Time 40 ms
    assert len(pictures) == len(frames)
    for expected, picture in zip(frames, pictures, strict=True):
        assert np.abs(picture - expected).mean() < 8


def test_mpeg2_is_served_as_stored(tmp_path: Path) -> None:
    stream = encode(uid.MPEG2MPML, frames_of())
    path = write(tmp_path, video_dicom(uid.MPEG2MPMLF, stream, 5, fragment_size=100))
    content, media_type = video_file(path, dcmread(path, defer_size=1024), BUDGET)
    assert media_type == "video/mpeg"
    assert content in (stream, stream + b"\x00")  # the last fragment padded to even length (PS3.5 A.4)


def test_a_bomb_anywhere_in_the_stream_is_refused_before_ffmpeg(tmp_path: Path) -> None:
    stream = encode(uid.MPEG4HP41, frames_of())
    path = write(tmp_path, video_dicom(uid.MPEG4HP41F, stream * 3 + h264_sps(4096, 4096), 15, fragment_size=500))
    with pytest.raises(NotRenderable, match="declares 65536 x 65536 pixels"):
        video_file(path, dcmread(path, defer_size=1024), BUDGET)


def test_a_file_without_video_is_refused() -> None:
    path = sample("JPEG2000.dcm")
    with pytest.raises(NotRenderable, match="holds no video: its transfer syntax is JPEG 2000"):
        video_file(path, dcmread(path, defer_size=1024), BUDGET)
