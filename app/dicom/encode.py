"""Encode an 8-bit display image for a browser: PNG (lossless) or JPEG, optionally down-sampled.

PNG speed is almost all deflate. Measured on the 1537 x 1184 grey sample (benchmarks/README.md):
Pillow level 1 takes ~43 ms (684 kB), level 6 ~250 ms (586 kB); the same image with the PNG
"Sub" filter applied in numpy and deflated by ISA-L level 1 takes ~5 ms (666 kB). So levels 0-3
use ISA-L (its own 0-3 scale, all fast), levels 4-9 use zlib through Pillow for the smallest files.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from isal import isal_zlib
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ISAL_MAX_LEVEL = 3
PNG_FILTER_SUB = 1  # PNG filter type 1: each byte minus the byte one pixel to the left (ISO 15948 9.2)


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _sub_filtered(image: np.ndarray) -> bytes:
    """Scanlines with filter byte 1 (Sub): a vectorised filter that deflate compresses well."""
    rows = image.shape[0]
    channels = 1 if image.ndim == 2 else image.shape[2]
    lines = image.reshape(rows, -1)
    out = np.empty((rows, lines.shape[1] + 1), dtype=np.uint8)
    out[:, 0] = PNG_FILTER_SUB
    out[:, 1 : channels + 1] = lines[:, :channels]
    np.subtract(lines[:, channels:], lines[:, :-channels], out=out[:, channels + 1 :])  # wraps modulo 256
    return out.tobytes()


def _fast_png(image: np.ndarray, level: int) -> bytes:
    rows, columns = image.shape[:2]
    colour_type = 0 if image.ndim == 2 else 2  # greyscale or truecolour, 8 bits a sample
    header = struct.pack(">IIBBBBB", columns, rows, 8, colour_type, 0, 0, 0)
    data = isal_zlib.compress(_sub_filtered(image), level)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def encode_png(image: np.ndarray, compress_level: int) -> bytes:
    """PNG of a (rows, columns) grey or (rows, columns, 3) RGB uint8 array."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    if compress_level <= ISAL_MAX_LEVEL:
        return _fast_png(image, compress_level)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Baseline JPEG (libjpeg-turbo through Pillow); 4:2:0 chroma for colour, as browsers expect."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def fit_within(image: np.ndarray, size: int) -> np.ndarray:
    """Shrink to fit inside ``size`` x ``size`` keeping the aspect ratio; never enlarges.

    Pillow's ``reducing_gap`` first box-reduces by an integer factor, then finishes with a
    Lanczos filter: alias-free thumbnails at a fraction of a full Lanczos pass.
    """
    rows, columns = image.shape[:2]
    if rows <= size and columns <= size:
        return image
    scale = size / max(rows, columns)
    target = (max(1, round(columns * scale)), max(1, round(rows * scale)))
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    resized = picture.resize(target, Image.Resampling.LANCZOS, reducing_gap=3.0)
    return np.asarray(resized)
