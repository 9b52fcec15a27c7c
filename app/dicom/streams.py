"""Read the image size a compressed frame declares in its own stream header, without decoding it.

A decoder allocates what the stream header says, not what the DICOM header says, so a small
frame declaring 65535 x 65535 is a decompression bomb. The headers read (PS3.5 A.4):

- JPEG (ITU-T T.81 B.2.2): the frame header SOF0..SOF15 (``FF C0``..``FF CF`` without DHT ``C4``,
  JPG ``C8`` and DAC ``CC``): precision, Y (lines), X (samples per line), Nf (components).
- JPEG-LS (ITU-T T.87 C.2.2): SOF55 (``FF F7``) with the same layout; Y or X of 0 means the size
  is in an LSE segment of ID 4 (C.2.4.1.4) with ``Wxy``-byte fields.
- JPEG 2000 / HTJ2K (ITU-T T.800 A.5.1): SIZ (``FF 51``) right after SOC (``FF 4F``): the image
  area is Xsiz - XOsiz by Ysiz - YOsiz, with Csiz components and a tile grid.

:func:`check_frame` refuses a frame whose stream declares more than the DICOM header or the pixel
budget, or a JPEG frame of more scans than any encoder writes, before any decoder sees it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pydicom import uid

from app.dicom.image_pixel import ImagePixel
from app.errors import NotRenderable

JPEG_SYNTAXES = frozenset(
    {
        uid.JPEGBaseline8Bit,
        uid.JPEGExtended12Bit,
        uid.JPEGLossless,
        uid.JPEGLosslessSV1,
        *(f"1.2.840.10008.1.2.4.{n}" for n in range(52, 57)),  # retired processes 3-13
    }
)
JPEG_LS_SYNTAXES = frozenset({uid.JPEGLSLossless, uid.JPEGLSNearLossless})
J2K_SYNTAXES = frozenset(
    {
        uid.JPEG2000Lossless,
        uid.JPEG2000,
        uid.JPEG2000MCLossless,
        uid.JPEG2000MC,
        *(f"1.2.840.10008.1.2.4.{n}" for n in (201, 202, 203)),  # HTJ2K
    }
)
JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
JPEG_LS_SOF = 0xF7
JPEG_LS_LSE = 0xF8
START_OF_SCAN = 0xDA
STANDALONE = frozenset({0x01, *range(0xD0, 0xD9)})  # TEM, RSTm, SOI: markers without a length
MAX_SEGMENTS = 4096  # segments walked before a stream without a frame header is left to the decoder
MAX_COMPONENTS = 4
#: Scans (SOS segments) a JPEG frame may hold: a decoder walks the whole image once per scan, so a
#: small progressive stream of thousands of scans is a time bomb. libjpeg-turbo suggests 500
#: (TJPARAM_SCANLIMIT); a progressive encoder's usual script has about 10.
MAX_JPEG_SCANS = 500
MAX_J2K_TILES = 65535  # T.800 A.5.1: at most 65535 tiles
JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  \r\n\x87\n"
J2K_SOC_SIZ = b"\xff\x4f\xff\x51"


@dataclass(frozen=True)
class StreamHeader:
    """What a codec stream declares about its image."""

    codec: str
    rows: int
    columns: int
    components: int


def _jpeg_family(data: bytes, codec: str) -> StreamHeader | None:
    """The SOFn / SOF55 frame header of a JPEG or JPEG-LS stream, following LSE ID 4 for large sizes."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, found = 2, None
    for _ in range(MAX_SEGMENTS):
        while pos < len(data) and data[pos] == 0xFF and pos + 1 < len(data) and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes (T.81 B.1.1.2)
        if pos + 4 > len(data) or data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker in STANDALONE:
            pos += 2
            continue
        length = struct.unpack_from(">H", data, pos + 2)[0]
        body = data[pos + 4 : pos + 2 + length]
        if (marker in JPEG_SOF or marker == JPEG_LS_SOF) and len(body) >= 6:
            lines, samples = struct.unpack_from(">HH", body, 1)
            found = StreamHeader(codec, lines, samples, body[5])
            if marker in JPEG_SOF or (lines and samples):
                return found
        elif marker == JPEG_LS_LSE and found is not None and len(body) >= 2 and body[0] == 4:
            width = body[1]
            if 1 <= width <= 4 and len(body) >= 2 + 2 * width:
                lines = int.from_bytes(body[2 : 2 + width], "big")
                samples = int.from_bytes(body[2 + width : 2 + 2 * width], "big")
                return StreamHeader(codec, lines, samples, found.components)
        elif marker == START_OF_SCAN:
            break
        pos += 2 + length
    return found


def _j2k(data: bytes) -> StreamHeader | None:
    """The SIZ segment of a JPEG 2000 codestream (also inside a JP2 file, as some writers store it)."""
    start = 0
    if data.startswith(JP2_SIGNATURE):
        start = data.find(J2K_SOC_SIZ, 0, 1 << 16)
        if start < 0:
            return None
    if data[start : start + 4] != J2K_SOC_SIZ or len(data) < start + 4 + 38:
        return None
    (_lsiz, _rsiz, xsiz, ysiz, xo, yo, xt, yt, xto, yto, csiz) = struct.unpack_from(">HHIIIIIIIIH", data, start + 4)
    if xsiz <= xo or ysiz <= yo or xt == 0 or yt == 0 or xto > xo or yto > yo:
        raise NotRenderable("the JPEG 2000 stream's image and tile size (SIZ) are inconsistent: the stream is corrupt")
    tiles = -(-(xsiz - xto) // xt) * -(-(ysiz - yto) // yt)
    if tiles > MAX_J2K_TILES:
        raise NotRenderable(f"the JPEG 2000 stream declares {tiles} tiles (at most 65535): the stream is corrupt")
    return StreamHeader("JPEG 2000", ysiz - yo, xsiz - xo, csiz)


def stream_header(syntax: str, frame: bytes) -> StreamHeader | None:
    """The size the frame's codec stream declares, or None for syntaxes without one (RLE) or no header found."""
    if syntax in JPEG_SYNTAXES:
        return _jpeg_family(frame, "JPEG")
    if syntax in JPEG_LS_SYNTAXES:
        return _jpeg_family(frame, "JPEG-LS")
    if syntax in J2K_SYNTAXES:
        return _j2k(frame)
    return None


def check_frame(syntax: str, frame: bytes, image: ImagePixel, max_pixels: int) -> None:
    """Refuse a frame whose stream declares a larger image than the DICOM header or the budget, or too many scans."""
    if syntax in JPEG_SYNTAXES or syntax in JPEG_LS_SYNTAXES:
        scans = frame.count(b"\xff\xda")  # entropy-coded data stuffs FF as FF 00, so this counts markers
        if scans > MAX_JPEG_SCANS:
            raise NotRenderable(
                f"the JPEG stream holds {scans} scans (at most {MAX_JPEG_SCANS}): "
                "decoding would take a pass over the whole image for each"
            )
    header = stream_header(syntax, frame)
    if header is None:
        return
    declared = f"{header.columns} x {header.rows}"
    if header.components > MAX_COMPONENTS:
        raise NotRenderable(f"the {header.codec} stream declares {header.components} components (at most 4)")
    if header.rows * header.columns * max(header.components, 1) > max_pixels:
        raise NotRenderable(
            f"the {header.codec} stream declares {declared} pixels, more than the limit of {max_pixels} samples"
        )
    if header.rows > image.rows or header.columns > image.columns:
        raise NotRenderable(
            f"the {header.codec} stream declares {declared} pixels, more than the header's "
            f"Columns x Rows ({image.columns} x {image.rows}): refused before decoding"
        )
