"""Short generated videos of known content (PyAV's encoders), wrapped as DICOM per PS3.5 8.2.5-8.2.7."""

from __future__ import annotations

from fractions import Fraction
from io import BytesIO

import av
import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import UID, generate_uid

#: Solid colours, one per frame: far apart in RGB, so codec error cannot confuse them.
COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0))
ROWS, COLUMNS = 48, 64

#: Encoder per video transfer syntax family: (PyAV encoder, pixel format, options).
ENCODERS: dict[str, tuple[str, str, dict[str, str]]] = {
    uid.MPEG2MPML: ("mpeg2video", "yuv420p", {}),
    uid.MPEG4HP41: ("libx264", "yuv420p", {"preset": "ultrafast", "profile": "high"}),
    uid.HEVCMP51: ("libx265", "yuv420p", {"preset": "ultrafast", "x265-params": "log-level=none"}),
    uid.HEVCM10P51: ("libx265", "yuv420p10le", {"preset": "ultrafast", "x265-params": "log-level=none"}),
}


def frames_of(
    colours: tuple[tuple[int, int, int], ...] = COLOURS, rows: int = ROWS, columns: int = COLUMNS
) -> list[np.ndarray]:
    """One solid-colour RGB frame per colour, with a white bar moving one eighth of the width per frame."""
    frames = []
    for i, colour in enumerate(colours):
        frame = np.empty((rows, columns, 3), np.uint8)
        frame[:] = colour
        bar = (i * columns // 8) % columns
        frame[: rows // 4, bar : bar + columns // 8] = 128
        frames.append(frame)
    return frames


def encode(syntax: str, frames: list[np.ndarray]) -> bytes:
    """The elementary bitstream (MPEG-2 video, H.264 / HEVC Annex B) of ``frames`` at 25 frames per second."""
    name, pix_fmt, options = ENCODERS[syntax]
    context = av.CodecContext.create(name, "w")
    assert isinstance(context, av.VideoCodecContext)
    context.height, context.width = frames[0].shape[:2]
    context.pix_fmt = pix_fmt
    context.time_base = Fraction(1, 25)
    context.framerate = Fraction(25, 1)
    context.options = dict(options)
    out = bytearray()
    for pts, array in enumerate(frames):
        frame = av.VideoFrame.from_ndarray(array, format="rgb24").reformat(format=pix_fmt)
        frame.pts = pts
        for packet in context.encode(frame):
            out += bytes(packet)
    for packet in context.encode(None):
        out += bytes(packet)
    return bytes(out)


def video_dicom(
    syntax: str,
    bitstream: bytes,
    frames: int,
    rows: int = ROWS,
    columns: int = COLUMNS,
    fragment_size: int | None = None,
) -> bytes:
    """A Video Endoscopic Image (PS3.3 A.32.5) holding ``bitstream``: one fragment, or ``fragment_size`` pieces.

    Image Pixel values as PS3.5 8.2.5-8.2.7 require: YBR_PARTIAL_420, 3 samples, 8 bits (Main 10: 10 of 16).
    """
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.1.1"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "ES"
    ds.Rows, ds.Columns = rows, columns
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_PARTIAL_420"
    ds.PlanarConfiguration = 0
    bits = (16, 10) if syntax == uid.HEVCM10P51 else (8, 8)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = bits[0], bits[1], bits[1] - 1
    ds.PixelRepresentation = 0
    ds.NumberOfFrames = frames
    ds.FrameTime = 40.0
    ds.FrameIncrementPointer = 0x00181063
    ds.CineRate = 25
    if fragment_size is None:
        pieces = [bitstream]
    else:
        pieces = [bitstream[i : i + fragment_size] for i in range(0, len(bitstream), fragment_size)]
    ds.PixelData = encapsulate_fragments(pieces)
    ds["PixelData"].VR = "OB"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def encapsulate_fragments(pieces: list[bytes]) -> bytes:
    """An empty Basic Offset Table, then each piece as one fragment (even-length, PS3.5 A.4)."""
    assert all(len(piece) % 2 == 0 for piece in pieces[:-1]), "only the last fragment may need a pad byte"
    if len(pieces) == 1:
        return encapsulate(pieces)
    out = bytearray(b"\xfe\xff\x00\xe0\x00\x00\x00\x00")
    for piece in pieces:
        padded = piece + b"\x00" * (len(piece) % 2)
        out += b"\xfe\xff\x00\xe0" + len(padded).to_bytes(4, "little") + padded
    return bytes(out)


class BitWriter:
    """MSB-first bits with Exp-Golomb codes, to write parameter sets no encoder would (H.264 7.3.2.1.1)."""

    def __init__(self) -> None:
        self.bits: list[int] = []

    def u(self, n: int, value: int) -> BitWriter:
        self.bits += [(value >> (n - 1 - i)) & 1 for i in range(n)]
        return self

    def ue(self, value: int) -> BitWriter:
        code = value + 1
        return self.u(2 * code.bit_length() - 1, code)

    def rbsp(self) -> bytes:
        """The bits with rbsp_trailing_bits, emulation prevention bytes inserted (7.4.1)."""
        bits = [*self.bits, 1] + [0] * (-(len(self.bits) + 1) % 8)
        raw = bytes(int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8))
        out = bytearray()
        for byte in raw:
            if len(out) >= 2 and out[-1] == 0 and out[-2] == 0 and byte <= 3:
                out.append(3)
            out.append(byte)
        return bytes(out)


def h264_sps(width_mbs: int, height_mbs: int) -> bytes:
    """A Baseline-profile sequence parameter set NAL unit (with start code) declaring the given size."""
    bits = BitWriter().u(8, 66).u(8, 0).u(8, 30).ue(0)  # profile, constraints, level, sps id
    bits.ue(0).ue(2).ue(1).u(1, 0)  # log2_max_frame_num-4, poc type 2, one reference, no gaps
    bits.ue(width_mbs - 1).ue(height_mbs - 1).u(1, 1).u(1, 1).u(1, 0).u(1, 0)  # frame_mbs_only, 8x8, no crop, no VUI
    return b"\x00\x00\x00\x01\x67" + bits.rbsp()


def mpeg2_declaring(stream: bytes, width: int, height: int) -> bytes:
    """``stream`` with its sequence headers (and extensions) rewritten to declare ``width`` x ``height``."""
    out = bytearray(stream)
    start = out.find(b"\x00\x00\x01\xb3")
    while start >= 0:
        packed = ((width & 0xFFF) << 12) | (height & 0xFFF)
        out[start + 4 : start + 7] = packed.to_bytes(3, "big")
        extension = out.find(b"\x00\x00\x01\xb5", start)
        if extension >= 0 and out[extension + 4] >> 4 == 1:
            ext = int.from_bytes(out[extension + 4 : extension + 8], "big") & ~(0xF << 13)
            ext |= ((width >> 12) & 3) << 15 | ((height >> 12) & 3) << 13
            out[extension + 4 : extension + 8] = ext.to_bytes(4, "big")
        start = out.find(b"\x00\x00\x01\xb3", start + 4)
    return bytes(out)
