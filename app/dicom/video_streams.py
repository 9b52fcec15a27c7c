"""Read the picture size a video bitstream declares in its parameter sets, without decoding it.

A video decoder allocates what the bitstream's sequence header says, so a few hundred bytes
declaring 16383 x 16383 (MPEG-2) or 2^20 x 2^20 (H.264, HEVC) are a decompression bomb. The
headers read, in pure Python so that the check runs before any native decoder sees the stream:

- MPEG-2 (ISO/IEC 13818-2 6.2.2.1, 6.2.2.3): sequence_header (``00 00 01 B3``) horizontal and
  vertical size values, extended by the sequence_extension (``00 00 01 B5``, identifier 1).
- H.264 (ITU-T H.264 7.3.2.1.1): the sequence parameter set (NAL unit type 7): picture width and
  height in macroblocks, less the frame cropping rectangle.
- HEVC (ITU-T H.265 7.3.2.2.1): the sequence parameter set (NAL unit type 33):
  pic_width/height_in_luma_samples, less the conformance window.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum

from app.dicom.streams import StreamHeader
from app.errors import NotRenderable

MAX_HEADERS = 64  # parameter sets checked per chunk; a stream repeats its SPS at most once per picture


class VideoCodec(StrEnum):
    """The bitstream families of the video transfer syntaxes (PS3.5 8.2.5-8.2.7), by FFmpeg decoder name."""

    MPEG2 = "mpeg2video"
    H264 = "h264"
    HEVC = "hevc"


class _Bits:
    """An MSB-first bit reader over an RBSP (emulation prevention bytes removed, H.264 7.4.1)."""

    def __init__(self, payload: bytes) -> None:
        rbsp = re.sub(rb"\x00\x00\x03(?=[\x00-\x03])", b"\x00\x00", payload)
        self._value = int.from_bytes(rbsp, "big")
        self._left = 8 * len(rbsp)

    def u(self, n: int) -> int:
        if n > self._left:
            raise ValueError("parameter set cut short")
        self._left -= n
        return (self._value >> self._left) & ((1 << n) - 1)

    def ue(self) -> int:
        """Exp-Golomb ue(v) (H.264 9.1); more than 31 leading zeros is not a valid code."""
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("invalid Exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


def _chroma_units(chroma_format_idc: int) -> tuple[int, int]:
    """SubWidthC, SubHeightC (H.264 Table 6-1, H.265 Table 6-1); 4:0:0 and 4:4:4 crop in luma samples."""
    return {1: (2, 2), 2: (2, 1)}.get(chroma_format_idc, (1, 1))


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following:
            following = (last + bits.se() + 256) % 256
        last = following or last


HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})


def h264_sps(payload: bytes) -> StreamHeader:
    """Display size of an H.264 sequence parameter set (``payload`` after the one-byte NAL header)."""
    bits = _Bits(payload)
    profile = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in HIGH_PROFILES:
        chroma = bits.ue()
        if chroma == 3:
            bits.u(1)  # separate_colour_plane_flag
        bits.ue(), bits.ue()  # bit depths
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(12 if chroma == 3 else 8):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    order_type = bits.ue()
    if order_type == 0:
        bits.ue()
    elif order_type == 1:
        bits.u(1), bits.se(), bits.se()
        for _ in range(min(bits.ue(), 255)):
            bits.se()
    bits.ue(), bits.u(1)  # max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
    width = (bits.ue() + 1) * 16
    map_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    height = (2 - frame_mbs_only) * map_units * 16
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    if bits.u(1):  # frame_cropping_flag (7.4.2.1.1: CropUnitX, CropUnitY)
        unit_x, unit_y = _chroma_units(chroma)
        unit_y *= 2 - frame_mbs_only
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        width = max(width - unit_x * (left + right), 0)
        height = max(height - unit_y * (top + bottom), 0)
    return StreamHeader("H.264", height, width, 1 if chroma == 0 else 3)


def hevc_sps(payload: bytes) -> StreamHeader:
    """Display size of an HEVC sequence parameter set (``payload`` after the two-byte NAL header)."""
    bits = _Bits(payload)
    bits.u(4)  # sps_video_parameter_set_id
    sub_layers = bits.u(3)  # sps_max_sub_layers_minus1
    bits.u(1)
    bits.u(96)  # general profile_tier_level (7.3.3): profile 88 bits, level 8 bits
    present = [(bits.u(1), bits.u(1)) for _ in range(sub_layers)]
    if sub_layers:
        bits.u(2 * (8 - sub_layers))  # reserved_zero_2bits
    for profile_present, level_present in present:
        bits.u(88 * profile_present + 8 * level_present)
    bits.ue()  # sps_seq_parameter_set_id
    chroma = bits.ue()
    if chroma == 3:
        bits.u(1)
    width, height = bits.ue(), bits.ue()
    if bits.u(1):  # conformance_window_flag (7.4.3.2.1)
        unit_x, unit_y = _chroma_units(chroma)
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        width = max(width - unit_x * (left + right), 0)
        height = max(height - unit_y * (top + bottom), 0)
    return StreamHeader("HEVC", height, width, 1 if chroma == 0 else 3)


def mpeg2_sequence(data: bytes, start: int) -> StreamHeader:
    """Size of the MPEG-2 sequence header at ``start``, with its sequence_extension when one follows."""
    if len(data) < start + 12:
        raise ValueError("sequence header cut short")
    packed = int.from_bytes(data[start + 4 : start + 7], "big")
    width, height = packed >> 12, packed & 0xFFF
    extension = data.find(b"\x00\x00\x01\xb5", start + 12, start + 12 + 256)
    if extension >= 0 and len(data) >= extension + 8 and data[extension + 4] >> 4 == 1:
        ext = int.from_bytes(data[extension + 4 : extension + 8], "big")  # id 4, profile 8, prog 1, chroma 2, h 2, v 2
        chroma = (ext >> 17) & 0x3
        width |= ((ext >> 15) & 0x3) << 12
        height |= ((ext >> 13) & 0x3) << 12
        return StreamHeader("MPEG-2", height, width, 3 if chroma else 1)
    return StreamHeader("MPEG-2", height, width, 3)


PATTERNS = {
    VideoCodec.MPEG2: re.compile(rb"\x00\x00\x01\xb3", re.DOTALL),
    VideoCodec.H264: re.compile(rb"\x00\x00\x01[\x07\x27\x47\x67]", re.DOTALL),  # nal_unit_type 7, any ref_idc
    VideoCodec.HEVC: re.compile(rb"\x00\x00\x01[\x42\x43]", re.DOTALL),  # nal_unit_type 33
}


def parameter_sets(codec: VideoCodec, data: bytes, limit: int | None = MAX_HEADERS) -> Iterator[StreamHeader]:
    """The sizes of the first ``limit`` (None: all) sequence headers / SPSs in ``data``.

    A parameter set cut off at the end of ``data`` is skipped (the decoder's own pixel limit
    still applies); one that is malformed is refused: no decoder could use it either.
    """
    for count, match in enumerate(PATTERNS[codec].finditer(data)):
        if limit is not None and count >= limit:
            return
        start = match.start()
        end = data.find(b"\x00\x00\x01", start + 4)
        payload = data[start + 4 : end if end >= 0 else len(data)]
        try:
            if codec is VideoCodec.MPEG2:
                yield mpeg2_sequence(data, start)
            elif codec is VideoCodec.H264:
                yield h264_sps(payload)
            else:
                yield hevc_sps(payload[1:])
        except ValueError:
            if end < 0:
                return  # cut off by the chunk boundary
            raise NotRenderable(
                f"the {codec.name} stream's sequence parameters are malformed: the stream is corrupt"
            ) from None
