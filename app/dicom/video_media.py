"""The stored video as a browser-playable file: PS3.18 8.7.4 rendered media types video/mpeg and video/mp4.

MPEG-2 (PS3.5 8.2.5) is served as its stored elementary stream (``video/mpeg``). H.264 and HEVC
(8.2.6, 8.2.7) are Annex B elementary streams, which browsers do not play bare: they are remuxed,
without re-encoding, into an MP4 file (``video/mp4``). An elementary stream carries no timestamps,
so they are made here: every picture lasts Frame Time (0018,1063) or 1/Cine Rate (0018,0040)
(PS3.3 C.7.6.5), and the presentation order of pictures coded out of order (B-frames) is learnt
by decoding the stream once (decoder output order = display order).

Native code on untrusted data: run :func:`remux` in the decode sandbox. Every parameter set of
the whole stream is checked against the budget before FFmpeg sees it.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from app.dicom.image_pixel import ImagePixel
from app.dicom.video import VIDEO_SYNTAXES, check_chunk, decoder_pixel_limit
from app.dicom.video_streams import VideoCodec
from app.errors import NotRenderable

if TYPE_CHECKING:
    import av

TICKS = 90_000  # MP4 time scale: the MPEG system clock, exact for 24, 25, 30 and 60 frames per second
DEMUXERS = {VideoCodec.MPEG2: "mpegvideo", VideoCodec.H264: "h264", VideoCodec.HEVC: "hevc"}


def frame_ticks(frame_time_ms: float | None) -> int:
    """Duration of one picture in 1/90000 s; 25 frames per second when the header gives no usable rate."""
    if frame_time_ms is None or not 0.1 <= frame_time_ms <= 60_000:
        return TICKS // 25
    return max(round(frame_time_ms * TICKS / 1000), 1)


def remux(syntax: str, chunks: Iterable[bytes], image: ImagePixel, max_pixels: int, ticks: int) -> bytes:
    """The MP4 file (H.264, HEVC) holding the stored bitstream ``chunks`` unchanged, one picture per ``ticks``."""
    import av  # imported here: only decode sandbox workers load FFmpeg

    codec = VIDEO_SYNTAXES[syntax].codec
    stream = bytearray()
    for chunk in chunks:
        check_chunk(codec, chunk, image, max_pixels, limit=None)
        stream += chunk
    limit = str(decoder_pixel_limit(image, max_pixels))
    try:
        with av.open(io.BytesIO(stream), "r", format=DEMUXERS[codec], options={"max_pixels": limit}) as source:
            video = source.streams.video[0]
            video.codec_context.options = {"max_pixels": limit}
            packets = [packet for packet in source.demux(video) if packet.size]
            order = _display_order(video.codec_context, packets)
            output = io.BytesIO()
            with av.open(
                output, "w", format="mp4", options={"movflags": "+frag_keyframe+empty_moov+default_base_moof"}
            ) as target:
                out = target.add_stream_from_template(video)
                out.time_base = Fraction(1, TICKS)
                delay = max((decoded - shown for decoded, shown in enumerate(order)), default=0)
                for decoded, packet in enumerate(packets):
                    packet.time_base = Fraction(1, TICKS)
                    packet.pts = (order[decoded] + delay) * ticks  # dts <= pts, both from 0 (no edit list)
                    packet.dts = decoded * ticks
                    packet.duration = ticks
                    packet.stream = out
                    target.mux(packet)
    except av.FFmpegError as exc:
        raise NotRenderable(
            f"the video could not be remuxed ({codec.name}): the bitstream is corrupt ({type(exc).__name__})"
        ) from None
    if not packets:
        raise NotRenderable(f"the video could not be remuxed ({codec.name}): the bitstream holds no picture")
    return output.getvalue()


def _display_order(context: av.VideoCodecContext, packets: list[av.Packet[Any]]) -> list[int]:
    """For each packet in decode order, its position in display order (identity when the decoder cannot tell)."""
    shown: list[int] = []
    for decoded, packet in enumerate(packets):
        packet.pts = packet.dts = decoded
        shown += [frame.pts for frame in context.decode(packet) if frame.pts is not None]
    shown += [frame.pts for frame in context.decode(None) if frame.pts is not None]
    if sorted(shown) != list(range(len(packets))):
        return list(range(len(packets)))  # a picture was dropped or split: keep decode order
    position = [0] * len(packets)
    for display, decoded in enumerate(shown):
        position[decoded] = display
    return position
