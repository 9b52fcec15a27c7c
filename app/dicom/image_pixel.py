"""The Image Pixel module (PS3.3 C.7.6.3) read strictly: each value checked, a bad one named.

A render trusts these elements to size buffers and pick decoders, so they are read here once,
before anything is decoded. A value that is missing, of the wrong length (``Rows`` stored in
3 bytes), not a number (``Bits Allocated`` written as text) or outside what DICOM allows
raises :class:`NotRenderable` naming the element, never a pydicom or Python error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydicom.datadict import dictionary_description, tag_for_keyword
from pydicom.dataset import Dataset

from app.errors import MalformedElement, NotRenderable

VALID_BITS_ALLOCATED = (1, 8, 16, 32, 64)


def element_label(keyword: str) -> str:
    """``Bits Allocated (0028,0100)``: how an element is named in an answer."""
    tag = tag_for_keyword(keyword)
    if tag is None:
        return keyword
    return f"{dictionary_description(tag)} ({tag >> 16:04X},{tag & 0xFFFF:04X})"


def malformed(keyword: str, problem: str) -> MalformedElement:
    return MalformedElement(f"the image header element {element_label(keyword)} {problem}")


def _raw_value(source: Dataset, keyword: str) -> Any:
    """The element's value, or None when absent or empty; a value pydicom cannot convert is named."""
    try:
        if keyword not in source:
            return None
        value = source[keyword].value
    except Exception:  # pydicom raises (or, in strict mode, warns) on wrong lengths and bad text
        raise malformed(keyword, "is malformed: its value cannot be read as its VR") from None
    if value is None or value == "" or value == b"":
        return None
    return value


def _single(value: Any) -> Any:
    if isinstance(value, (list, tuple)) or (hasattr(value, "__getitem__") and not isinstance(value, (str, bytes))):
        return value[0] if len(value) else None
    return value


def optional_int(source: Dataset, keyword: str) -> int | None:
    """An integer element (US, IS, ...), None when absent or empty; anything else non-numeric is named."""
    value = _single(_raw_value(source, keyword))
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):  # a wrong-length value kept as UN bytes
        raise malformed(keyword, f"is malformed: {len(value)} bytes that are not a number")
    try:
        number = float(value)
        if number != int(number):
            raise ValueError
        return int(number)
    except (TypeError, ValueError, OverflowError):
        raise malformed(keyword, "is not a whole number") from None


def optional_float(source: Dataset, keyword: str, index: int = 0) -> float | None:
    """The ``index``-th number of a DS/FL/FD element, None when absent or empty; non-numbers are named."""
    value = _raw_value(source, keyword)
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        raise malformed(keyword, f"is malformed: {len(value)} bytes that are not a number")
    if isinstance(value, (list, tuple)) or (hasattr(value, "__getitem__") and not isinstance(value, str)):
        if len(value) <= index:
            return None
        value = value[index]
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise malformed(keyword, "is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise malformed(keyword, "is not a finite number")
    return number


def text(source: Dataset, keyword: str, default: str = "") -> str:
    """A code string (CS) upper-cased without padding; a value that is not text is named."""
    value = _single(_raw_value(source, keyword))
    if value is None:
        return default
    if not isinstance(value, str):
        raise malformed(keyword, "is not a code string")
    return value.strip().upper()


@dataclass(frozen=True)
class ImagePixel:
    """What the header declares about the stored image (PS3.3 C.7.6.3.1)."""

    rows: int
    columns: int
    frames: int
    samples: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    planar_configuration: int

    @property
    def pixel_count(self) -> int:
        """Samples the whole pixel data declares: rows x columns x frames x samples."""
        return self.rows * self.columns * self.frames * self.samples

    def frame_bytes(self) -> int:
        """Bytes one native frame occupies (PS3.5 8.1.1; YBR_FULL_422 stores 2 samples a pixel)."""
        samples = 2 if self.samples == 3 and self.photometric == "YBR_FULL_422" else self.samples
        return (self.rows * self.columns * samples * self.bits_allocated + 7) // 8

    def decode_options(self) -> dict[str, Any]:
        """The options pydicom's decoders take (``pydicom.pixels.utils.as_pixel_options``), validated."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "number_of_frames": self.frames,
            "samples_per_pixel": self.samples,
            "bits_allocated": self.bits_allocated,
            "bits_stored": self.bits_stored,
            "pixel_representation": self.pixel_representation,
            "photometric_interpretation": self.photometric,
            "planar_configuration": self.planar_configuration,
        }


def frame_count(ds: Dataset) -> int:
    """Number of Frames (0028,0008); an unreadable value (IS such as ``'1A'``) counts as one frame.

    The first frame is where it is whatever the count says, so a viewer can still show it.
    """
    try:
        frames = optional_int(ds, "NumberOfFrames")
    except MalformedElement:
        return 1
    return max(frames or 1, 1)


def read_image_pixel(ds: Dataset, max_pixels: int, per_frame: bool = False) -> ImagePixel:
    """Read and check the Image Pixel module before anything is decoded; the pixel budget too.

    The budget counts every frame, except for video (``per_frame``): a video decoder holds one
    picture at a time, so there it bounds rows x columns x samples.
    """
    rows = optional_int(ds, "Rows")
    columns = optional_int(ds, "Columns")
    bits = optional_int(ds, "BitsAllocated")
    for keyword, value in (("Rows", rows), ("Columns", columns), ("BitsAllocated", bits)):
        if not value:
            raise NotRenderable(f"the image header is incomplete: {element_label(keyword)} must be set and not 0")
    assert rows is not None and columns is not None and bits is not None
    if bits not in VALID_BITS_ALLOCATED:
        raise NotRenderable(f"Bits Allocated {bits} is not valid DICOM (1, 8, 16, 32 or 64)")
    if not (0 < rows <= 0xFFFF and 0 < columns <= 0xFFFF):
        raise malformed("Rows" if not 0 < rows <= 0xFFFF else "Columns", "is outside 1..65535")
    samples = optional_int(ds, "SamplesPerPixel") or 1
    if samples not in (1, 3):
        raise NotRenderable(f"Samples per Pixel {samples} is not supported (1 or 3)")
    stored = optional_int(ds, "BitsStored") or bits
    if not 0 < stored <= bits:
        raise malformed("BitsStored", f"is {stored}: it must be between 1 and Bits Allocated ({bits})")
    representation = optional_int(ds, "PixelRepresentation") or 0
    if representation not in (0, 1):
        raise malformed("PixelRepresentation", "must be 0 (unsigned) or 1 (signed)")
    planar = optional_int(ds, "PlanarConfiguration") or 0
    if planar not in (0, 1):
        raise malformed("PlanarConfiguration", "must be 0 or 1")
    photometric = text(ds, "PhotometricInterpretation", "MONOCHROME2" if samples == 1 else "RGB")
    image = ImagePixel(rows, columns, frame_count(ds), samples, bits, stored, representation, photometric, planar)
    declared = image.rows * image.columns * image.samples if per_frame else image.pixel_count
    if declared > max_pixels:
        raise NotRenderable(f"the image declares {declared} samples, more than the limit of {max_pixels}")
    return image
