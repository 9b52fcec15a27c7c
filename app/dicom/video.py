"""Video transfer syntaxes (PS3.5 8.2.5-8.2.7): one bitstream in the Pixel Data fragments, decoded by PyAV.

MPEG-2 (8.2.5), MPEG-4 AVC/H.264 (8.2.6) and HEVC/H.265 (8.2.7) store the whole video as one
bitstream: in a single fragment for the original syntaxes, split over any number of fragments for
the fragmentable ones (PS3.5 A.4, the Basic Offset Table empty). The stream is read fragment by
fragment and never held whole: the header check reads the first :data:`HEAD_BYTES`, the decoder
is fed fragment by fragment and stops at the requested frame.

Decoding is FFmpeg's own (LGPL) MPEG-2, H.264 and HEVC decoders through PyAV. Bombs are refused
twice: the sequence parameters are read in pure Python (:mod:`app.dicom.video_streams`) before any
native code runs, on the head of the stream and again on every fragment fed to the decoder, and
FFmpeg's ``max_pixels`` refuses any picture above the budget the header check used.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
from pydicom import uid

from app.dicom.image_pixel import ImagePixel
from app.dicom.video_streams import MAX_HEADERS, VideoCodec, parameter_sets
from app.errors import InvalidRequest, NotRenderable

if TYPE_CHECKING:
    import av

log = logging.getLogger("lightbox.video")

CHUNK_BYTES = 1 << 20  # bitstream read (and checked, and fed to the decoder) this much at a time
UNDEFINED_LENGTH = 0xFFFFFFFF
HEAD_BYTES = 1 << 20  # a decoder needs the sequence parameters before the first picture: they are at the start
#: Macroblock / coding-block slack between the header's Rows x Columns and the coded picture (H.264 codes
#: 1080 lines as 1088 when the cropping rectangle is omitted; field pictures round to 32 lines).
ALIGNMENT = 64


@dataclass(frozen=True)
class VideoSyntax:
    """How a video transfer syntax is decoded and served (PS3.18 8.7.4: video/mpeg, video/mp4)."""

    codec: VideoCodec
    media_type: str


_MPEG2 = VideoSyntax(VideoCodec.MPEG2, "video/mpeg")
_H264 = VideoSyntax(VideoCodec.H264, "video/mp4")
_HEVC = VideoSyntax(VideoCodec.HEVC, "video/mp4")
VIDEO_SYNTAXES: dict[str, VideoSyntax] = {
    uid.MPEG2MPML: _MPEG2,
    uid.MPEG2MPMLF: _MPEG2,
    uid.MPEG2MPHL: _MPEG2,
    uid.MPEG2MPHLF: _MPEG2,
    **{
        syntax: _H264
        for syntax in (
            uid.MPEG4HP41,
            uid.MPEG4HP41F,
            uid.MPEG4HP41BD,
            uid.MPEG4HP41BDF,
            uid.MPEG4HP422D,
            uid.MPEG4HP422DF,
            uid.MPEG4HP423D,
            uid.MPEG4HP423DF,
            uid.MPEG4HP42STEREO,
            uid.MPEG4HP42STEREOF,
        )
    },
    uid.HEVCMP51: _HEVC,
    uid.HEVCM10P51: _HEVC,
}


def is_video(syntax: str) -> bool:
    return syntax in VIDEO_SYNTAXES


def fragments(source: BinaryIO) -> Iterator[bytes]:
    """The bitstream in the Pixel Data fragments (PS3.5 A.4), in pieces of at most :data:`CHUNK_BYTES`.

    Items are read one header at a time: the (empty) Basic Offset Table is skipped, each fragment
    is yielded in pieces (a non-fragmentable syntax keeps the whole video in one fragment, up to
    4 GiB), and the Sequence Delimitation Item or the end of the file ends the stream.
    """
    first = True
    while True:
        header = source.read(8)
        if len(header) < 8:
            return  # the end of the value (a defined-length read) or of the file
        group, element, length = struct.unpack("<HHI", header)
        if (group, element) == (0xFFFE, 0xE0DD):
            return
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED_LENGTH:
            raise NotRenderable("the encapsulated pixel data is malformed: the video fragments could not be read")
        if first:  # the Basic Offset Table: a video has one frame item list, no offsets to use
            first = False
            source.seek(length, 1)
            continue
        while length:
            piece = source.read(min(length, CHUNK_BYTES))
            if not piece:
                raise NotRenderable("the video's pixel data is cut short: a fragment ends past the end of the file")
            length -= len(piece)
            yield piece


def _aligned(value: int) -> int:
    return -(-value // ALIGNMENT) * ALIGNMENT


def check_chunk(
    codec: VideoCodec, chunk: bytes, image: ImagePixel, max_pixels: int, limit: int | None = MAX_HEADERS
) -> None:
    """Refuse sequence parameters declaring more than the pixel budget or (beyond block alignment) the header."""
    for header in parameter_sets(codec, chunk, limit):
        declared = f"{header.columns} x {header.rows}"
        if header.rows * header.columns * max(header.components, 1) > max_pixels:
            raise NotRenderable(
                f"the {header.codec} stream declares {declared} pixels, more than the limit of {max_pixels} samples"
            )
        if header.rows > _aligned(image.rows) or header.columns > _aligned(image.columns):
            raise NotRenderable(
                f"the {header.codec} stream declares {declared} pixels, more than the header's "
                f"Columns x Rows ({image.columns} x {image.rows}): refused before decoding"
            )


def check_head(syntax: str, source: BinaryIO, image: ImagePixel, max_pixels: int) -> None:
    """Check the sequence parameters in the first :data:`HEAD_BYTES` of the bitstream (pure Python)."""
    head = bytearray()
    for fragment in fragments(source):
        head += fragment[: HEAD_BYTES - len(head)]
        if len(head) >= HEAD_BYTES:
            break
    if not head:
        raise NotRenderable("the video's Pixel Data holds no bitstream")
    check_chunk(VIDEO_SYNTAXES[syntax].codec, bytes(head), image, max_pixels)


def decoder_pixel_limit(image: ImagePixel, max_pixels: int) -> int:
    """FFmpeg's ``max_pixels`` (width x height of any picture): the budget and the header, with block slack."""
    by_budget = max_pixels // max(image.samples, 1)
    by_header = (_aligned(image.rows) + ALIGNMENT) * (_aligned(image.columns) + ALIGNMENT)
    return max(min(by_budget, by_header), 1)


def decode_video_frame(syntax: str, source: BinaryIO, image: ImagePixel, index: int, max_pixels: int) -> np.ndarray:
    """Frame ``index`` (0-based, display order) as (rows, columns, 3) RGB uint8.

    YBR_PARTIAL_420 pictures (PS3.3 C.7.6.3.1.2) are converted by FFmpeg's scaler with the
    colour matrix the stream signals; Main 10 pictures are reduced to 8 bits there too.
    A picture FFmpeg flags corrupt (error concealment) is refused: never a partial picture.
    """
    import av  # imported here: only decode sandbox workers load FFmpeg

    codec = VIDEO_SYNTAXES[syntax].codec
    context = av.CodecContext.create(codec.value, "r")
    assert isinstance(context, av.VideoCodecContext)
    context.options = {"max_pixels": str(decoder_pixel_limit(image, max_pixels))}

    def pictures() -> Iterator[av.VideoFrame]:
        for fragment in fragments(source):
            check_chunk(codec, fragment, image, max_pixels)
            for packet in context.parse(fragment):
                yield from context.decode(packet)
        for packet in context.parse(None):
            yield from context.decode(packet)
        yield from context.decode(None)

    seen = 0
    try:
        for frame in pictures():
            if seen == index:
                return _picture(frame)
            seen += 1
    except av.FFmpegError as exc:
        log.info("decoding a video frame failed: %s", type(exc).__name__)
        raise NotRenderable(
            f"the video could not be decoded ({codec.name}): the bitstream is corrupt or exceeds the pixel limit"
        ) from None
    if seen == 0:
        raise NotRenderable(f"the video could not be decoded ({codec.name}): the bitstream holds no picture")
    raise InvalidRequest(f"frame {index + 1} is out of range: the video stream holds {seen} frame(s)")


def _picture(frame: av.VideoFrame) -> np.ndarray:
    if frame.is_corrupt:
        raise NotRenderable("the video frame is corrupt: the decoder could only conceal its errors")
    return np.asarray(frame.to_ndarray(format="rgb24"), dtype=np.uint8)
