"""Decode one frame of stored pixel values, refusing what cannot be decoded faithfully.

Guards run on the header before any decoding (PS3.3 C.7.6.3 Image Pixel Module):
a pixel budget so that a file declaring 65535 x 65535 x 2^31 cannot exhaust memory,
and, for native (uncompressed) transfer syntaxes, a check that the Pixel Data value
is as long as the header says.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.pixels.decoders.base import get_decoder
from pydicom.pixels.utils import pixel_array
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from app.dicom import codecs
from app.errors import InvalidRequest, NotRenderable, UnsupportedEncoding

codecs.install()  # pydicom's decoder registry is process-wide; registering is idempotent

log = logging.getLogger("lightbox.pixels")

PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float


@dataclass(frozen=True)
class FrameGeometry:
    """What the header declares about the image (PS3.3 C.7.6.3.1)."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int

    @property
    def pixel_count(self) -> int:
        return self.rows * self.columns * self.frames * self.samples


def _int_attr(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    """An integer attribute, tolerating invalid IS text such as ``'1A'`` (returns ``default``)."""
    try:
        value = ds.get(keyword)
        if value is None or value == "":
            return default
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return default


def transfer_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax; a bare data set is read as Implicit VR Little Endian."""
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(uid)) if uid else ImplicitVRLittleEndian


def pixel_data_tag(ds: Dataset) -> int:
    """The tag holding this file's pixels, or :class:`NotRenderable` when there is none."""
    for tag in PIXEL_DATA_TAGS:
        if tag in ds:
            return tag
    raise NotRenderable("this file has no image: it holds no Pixel Data element")


def _pixel_data_length(ds: Dataset, tag: int, file_size: int | None) -> int | None:
    """Bytes of the Pixel Data value actually present, without loading a deferred value.

    A file cut short still declares the full length; what the file holds after the value's
    offset is what a decoder could read (``file_size`` is None for deflated data sets, whose
    offsets count inflated bytes).
    """
    raw = ds.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement):
        if raw.length == 0xFFFFFFFF:
            return None
        if file_size is None:
            return raw.length
        return max(min(raw.length, file_size - raw.value_tell), 0)
    value = ds[tag].value
    return len(value) if isinstance(value, (bytes, bytearray)) else None


def geometry(ds: Dataset, max_pixels: int) -> FrameGeometry:
    """Read and sanity-check the declared image size before anything is decoded."""
    rows = _int_attr(ds, "Rows")
    columns = _int_attr(ds, "Columns")
    bits = _int_attr(ds, "BitsAllocated")
    if not rows or not columns or not bits:
        raise NotRenderable("the image header is incomplete: Rows, Columns and Bits Allocated must be set")
    if bits not in (1, 8, 16, 32, 64):
        raise NotRenderable(f"Bits Allocated {bits} is not valid DICOM (1, 8, 16, 32 or 64)")
    samples = _int_attr(ds, "SamplesPerPixel", 1) or 1
    if samples not in (1, 3):
        raise NotRenderable(f"Samples per Pixel {samples} is not supported (1 or 3)")
    frames = max(_int_attr(ds, "NumberOfFrames", 1) or 1, 1)
    shape = FrameGeometry(rows, columns, frames, samples, bits)
    if shape.pixel_count > max_pixels:
        raise NotRenderable(f"the image declares {shape.pixel_count} samples, more than the limit of {max_pixels}")
    return shape


def _expected_native_bytes(ds: Dataset, shape: FrameGeometry) -> int:
    """Bytes that native Pixel Data must hold (PS3.5 8.1.1; YBR_FULL_422 stores 2 samples a pixel)."""
    samples = shape.samples
    if samples == 3 and str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        samples = 2
    bits = shape.rows * shape.columns * samples * shape.frames * shape.bits_allocated
    return (bits + 7) // 8


def _check_native_length(path: Path, ds: Dataset, tag: int, shape: FrameGeometry) -> None:
    """Refuse native Pixel Data shorter than the header declares: it would be a wrong picture."""
    deflated = transfer_syntax(ds) == DeflatedExplicitVRLittleEndian
    length = _pixel_data_length(ds, tag, None if deflated else path.stat().st_size)
    expected = _expected_native_bytes(ds, shape)
    if length is None or length >= expected:
        return
    raise NotRenderable(
        f"Pixel Data is shorter than the header declares ({length} of {expected} bytes): the file is truncated"
    )


def decode_frame(path: Path, ds: Dataset, index: int, max_pixels: int) -> np.ndarray:
    """Stored values of frame ``index`` (0-based), read from ``path`` without decoding other frames.

    Returns (rows, columns) or (rows, columns, 3) with YBR converted to RGB, as pydicom does.
    """
    tag = pixel_data_tag(ds)
    shape = geometry(ds, max_pixels)
    if not 0 <= index < shape.frames:
        raise InvalidRequest(f"frame {index + 1} is out of range: this file has {shape.frames} frame(s)")
    syntax = transfer_syntax(ds)
    if not syntax.is_transfer_syntax:
        raise UnsupportedEncoding(f"the transfer syntax {str(syntax)[:64]!r} is not one this service can decode")
    overrides: dict[str, Any] = {}
    if _int_attr(ds, "NumberOfFrames", None) is None and "NumberOfFrames" in ds:
        overrides["number_of_frames"] = 1  # invalid IS such as '1A': read the one frame we can trust
    if not syntax.is_compressed:
        _check_native_length(path, ds, tag, shape)
    else:
        try:
            decoder = get_decoder(syntax)
        except NotImplementedError:
            decoder = None
        if decoder is None or not decoder.is_available:
            raise UnsupportedEncoding(f"no installed decoder handles the transfer syntax {syntax.name}")
    try:
        if overrides or syntax == DeflatedExplicitVRLittleEndian:
            # Frame-by-frame reads need a seekable, valid header; these files are read whole.
            full = dcmread(path, force=True)
            if overrides:
                full.NumberOfFrames = overrides["number_of_frames"]
            return pixel_array(full, index=index)
        return pixel_array(str(path), index=index)
    except (MemoryError, RecursionError):
        raise NotRenderable("the pixel data could not be decoded within the service's limits") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # decoders raise many types on corrupt streams, pyo3 ones a PanicException
        log.info("decoding %s failed: %s: %s", path.name, type(exc).__name__, exc)
        kind = "compressed stream is corrupt or uses a feature no installed decoder supports"
        if not syntax.is_compressed:
            kind = "pixel data does not match what the header declares"
        raise NotRenderable(f"the image could not be decoded ({syntax.name}): the {kind}") from None
