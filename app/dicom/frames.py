"""Frames of Pixel Data for WADO-RS frame retrieval (PS3.18 §10.4.1.1.4, media types of §8.7.3.5.3).

Two representations:

- as stored: an encapsulated frame's fragments joined (its compressed bitstream, PS3.5 A.4), or a
  native frame's bytes in little endian (big-endian words swapped, deflate undone);
- decoded: the frame's stored values after decompression, little endian, for clients that ask
  for ``application/octet-stream`` from compressed data (runs in the decode sandbox).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import get_frame
from pydicom.pixels.utils import pack_bits, pixel_array
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
)

from app.dicom.pixels import decode_frame, geometry, pixel_data_tag, transfer_syntax
from app.errors import InvalidRequest, NotRenderable

OCTET_STREAM = "application/octet-stream"
EXPLICIT_LITTLE = str(ExplicitVRLittleEndian)

#: Media types of compressed frames by transfer syntax (PS3.18 Table 8.7.3-5; RLE as dicomweb-client names it).
COMPRESSED_MEDIA_TYPES: dict[str, str] = {
    "1.2.840.10008.1.2.4.50": "image/jpeg",
    "1.2.840.10008.1.2.4.51": "image/jpeg",
    "1.2.840.10008.1.2.4.57": "image/jpeg",
    "1.2.840.10008.1.2.4.70": "image/jpeg",
    "1.2.840.10008.1.2.4.80": "image/jls",
    "1.2.840.10008.1.2.4.81": "image/jls",
    "1.2.840.10008.1.2.4.90": "image/jp2",
    "1.2.840.10008.1.2.4.91": "image/jp2",
    "1.2.840.10008.1.2.4.92": "image/jpx",
    "1.2.840.10008.1.2.4.93": "image/jpx",
    "1.2.840.10008.1.2.4.201": "image/jphc",
    "1.2.840.10008.1.2.4.202": "image/jphc",
    "1.2.840.10008.1.2.4.203": "image/jphc",
    "1.2.840.10008.1.2.5": "image/dicom-rle",
}
MEDIA_TYPE_ALIASES = {"image/x-dicom-rle": "image/dicom-rle", "image/x-jls": "image/jls"}


@dataclass(frozen=True)
class Frame:
    content: bytes
    media_type: str
    transfer_syntax: str


def stored_media_type(syntax: str) -> str:
    """The media type of a frame kept as stored in ``syntax`` (native frames are octet streams)."""
    return COMPRESSED_MEDIA_TYPES.get(syntax, OCTET_STREAM)


def frame_count(ds: Dataset) -> int:
    try:
        return max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return 1


def check_numbers(ds: Dataset, numbers: list[int]) -> None:
    frames = frame_count(ds)
    for number in numbers:
        if not 1 <= number <= frames:
            raise InvalidRequest(f"frame {number} is out of range: this instance has {frames} frame(s)")


def _native_frame_bytes(ds: Dataset) -> int:
    shape = geometry(ds, 2**62)
    samples = shape.samples
    if samples == 3 and str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        samples = 2
    return shape.rows * shape.columns * samples * shape.bits_allocated // 8


def _swap(data: bytes, bits: int) -> bytes:
    if bits <= 8:
        return data
    width = bits // 8
    return np.frombuffer(data, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def _native(path: Path, ds: Dataset, numbers: list[int], max_pixels: int) -> list[bytes]:
    tag = pixel_data_tag(ds)
    shape = geometry(ds, max_pixels)
    syntax = transfer_syntax(ds)
    if shape.bits_allocated == 1:  # frames are not byte aligned: unpack, then pack each frame alone
        return [pack_bits(pixel_array(str(path), index=n - 1)) for n in numbers]
    size = _native_frame_bytes(ds)
    raw = ds.get_item(tag, keep_deferred=True)
    results: list[bytes] = []
    if syntax != DeflatedExplicitVRLittleEndian and isinstance(raw, RawDataElement) and raw.value is None:
        with path.open("rb") as handle:  # a deferred value: read only the frames asked for
            for number in numbers:
                handle.seek(raw.value_tell + (number - 1) * size)
                results.append(handle.read(size))
    else:
        value = dcmread(path, force=True)[tag].value if syntax == DeflatedExplicitVRLittleEndian else ds[tag].value
        results = [bytes(value[(n - 1) * size : n * size]) for n in numbers]
    if any(len(result) != size for result in results):
        raise NotRenderable("Pixel Data is shorter than the header declares: the file is truncated")
    if syntax == ExplicitVRBigEndian:
        results = [_swap(result, shape.bits_allocated) for result in results]
    return results


def stored_frames(path: Path, ds: Dataset, numbers: list[int], max_pixels: int) -> list[Frame]:
    """Frames ``numbers`` (1-based) as stored; ``ds`` is the parsed header (bulk values deferred)."""
    check_numbers(ds, numbers)
    syntax = transfer_syntax(ds)
    if not syntax.is_compressed:
        return [Frame(data, OCTET_STREAM, EXPLICIT_LITTLE) for data in _native(path, ds, numbers, max_pixels)]
    value = dcmread(path, force=True)[pixel_data_tag(ds)].value
    total = frame_count(ds)
    media_type = stored_media_type(str(syntax))
    try:
        return [Frame(get_frame(value, n - 1, number_of_frames=total), media_type, str(syntax)) for n in numbers]
    except (ValueError, IndexError, KeyError) as exc:
        raise NotRenderable(f"the encapsulated Pixel Data is malformed: {exc}"[:200]) from None


def decoded_frames(path: Path, numbers: list[int], max_pixels: int) -> list[bytes]:
    """Frames ``numbers`` decompressed to their stored values, little endian (for the decode sandbox)."""
    ds = dcmread(path, force=True, defer_size=1024)
    check_numbers(ds, numbers)
    results = []
    for number in numbers:
        array = decode_frame(path, ds, number - 1, max_pixels)
        results.append(np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes())
    return results


def is_compressed(syntax: str) -> bool:
    return UID(syntax).is_compressed
