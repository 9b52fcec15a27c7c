"""Turn stored pixel values into the 8-bit picture a radiologist's viewer shows by default.

Order of PS3.3 C.11 / PS3.4 Annex N: stored values -> Modality LUT (Rescale Slope /
Intercept or the Modality LUT Sequence, C.11.1) -> VOI (the first Window Center/Width
with its VOI LUT Function, C.11.2.1.2, or the first VOI LUT Sequence item, C.11.2.1.1;
else the frame's min-max) -> MONOCHROME1 inverted -> 8 bits. Colour stays colour:
RGB/YBR as decoded (YBR converted to RGB), PALETTE COLOR through its LUTs (C.7.6.3.1.5).

Integer frames are mapped through a lookup table over the values the frame holds, so the
per-pixel cost is one gather whatever the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydicom.dataset import Dataset

from app.dicom.image_pixel import optional_float, optional_int, text
from app.dicom.palette import apply_palette
from app.errors import NotRenderable

LUT_DOMAIN_LIMIT = 1 << 22  # larger integer ranges (32-bit data) are mapped arithmetically


class VoiFunction(StrEnum):
    """VOI LUT Function (0028,1056) defined terms, PS3.3 C.11.2.1.3."""

    LINEAR = "LINEAR"
    LINEAR_EXACT = "LINEAR_EXACT"
    SIGMOID = "SIGMOID"


@dataclass(frozen=True)
class Window:
    """A VOI window: centre and width in modality units."""

    center: float
    width: float
    function: VoiFunction = VoiFunction.LINEAR


def _frame_item(ds: Dataset, index: int, sequence: str) -> Dataset | None:
    """The functional-group item (PS3.3 C.7.6.16) for ``sequence`` that applies to frame ``index``."""
    for groups, position in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items and len(items) > position:
            inner = items[position].get(sequence)
            if inner:
                return inner[0]  # type: ignore[no-any-return]
    return None


def _rescale(ds: Dataset, index: int) -> tuple[float, float]:
    """Rescale Slope/Intercept (0028,1053)/(0028,1052), from the frame's functional groups when present."""
    source = _frame_item(ds, index, "PixelValueTransformationSequence") or ds
    slope = optional_float(source, "RescaleSlope")
    intercept = optional_float(source, "RescaleIntercept")
    return (slope if slope else 1.0), (intercept or 0.0)


def _lut_table(item: Dataset, ds: Dataset) -> tuple[int, np.ndarray, int]:
    """First input value mapped, the entries, and their bit depth, from a LUT item (C.11.1.1, C.11.2.1.1).

    LUT Descriptor (0028,3002): number of entries (0 means 65536), first input value mapped
    (signed when Pixel Representation is 1 and the value was read as unsigned), bits per entry.
    """
    try:
        descriptor = [int(v) for v in item.LUTDescriptor]
        entries = descriptor[0] or 65536
        first = descriptor[1]
        if first >= 32768 and optional_int(ds, "PixelRepresentation") == 1:
            first -= 65536
        data = np.asarray(item.LUTData, dtype=np.float64).reshape(-1)[:entries]
    except (AttributeError, TypeError, ValueError, IndexError):
        raise NotRenderable("a lookup table in the file is malformed (LUT Descriptor or LUT Data)") from None
    if data.size == 0:
        raise NotRenderable("a lookup table in the file holds no entries")
    bits = descriptor[2] if descriptor[2] > 0 else 16
    return first, data, bits


def _modality(values: np.ndarray, ds: Dataset, index: int) -> np.ndarray:
    """Modality LUT (C.11.1): the LUT Sequence when present, else the linear rescale."""
    lut_items = ds.get("ModalityLUTSequence")
    if lut_items:
        first, data, _bits = _lut_table(lut_items[0], ds)
        return data[np.clip(values.astype(np.int64) - first, 0, len(data) - 1)]
    slope, intercept = _rescale(ds, index)
    return values.astype(np.float64) * slope + intercept


def file_window(ds: Dataset, index: int) -> Window | None:
    """The first Window Center/Width (0028,1050)/(0028,1051) of the frame, if usable."""
    source = _frame_item(ds, index, "FrameVOILUTSequence")
    if source is None or "WindowCenter" not in source:
        source = ds
    center = optional_float(source, "WindowCenter")
    width = optional_float(source, "WindowWidth")
    if center is None or width is None or width <= 0:
        return None
    name = text(source, "VOILUTFunction", "LINEAR")
    function = VoiFunction(name) if name in VoiFunction.__members__ else VoiFunction.LINEAR
    return Window(center, width, function)


def _apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Window to 0..255 floats with the function of C.11.2.1.2 / C.11.2.1.3."""
    c, w = window.center, window.width
    if window.function is VoiFunction.SIGMOID:
        return 255.0 / (1.0 + np.exp(-4.0 * (values - c) / w))
    if window.function is VoiFunction.LINEAR_EXACT:
        return np.clip(((values - c) / w + 0.5) * 255.0, 0.0, 255.0)
    if w <= 1.0:
        return np.where(values <= c - 0.5, 0.0, 255.0)
    return np.clip(((values - (c - 0.5)) / (w - 1.0) + 0.5) * 255.0, 0.0, 255.0)


def _voi_lut(values: np.ndarray, ds: Dataset) -> np.ndarray | None:
    """The first VOI LUT Sequence item (C.11.2.1.1) scaled to 0..255, or None when absent."""
    items = ds.get("VOILUTSequence")
    if not items:
        return None
    first, data, bits = _lut_table(items[0], ds)
    out_max = float((1 << bits) - 1)
    if data.size and data.max() > out_max:  # some writers state fewer bits than they use
        out_max = float(data.max())
    mapped = data[np.clip(np.round(values).astype(np.int64) - first, 0, len(data) - 1)]
    return mapped * (255.0 / out_max)


def _min_max(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return np.zeros_like(values, dtype=np.float64)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros_like(values, dtype=np.float64)
    return np.asarray((np.nan_to_num(values, nan=low) - low) * (255.0 / (high - low)), dtype=np.float64)


def _grey_levels(
    modality: np.ndarray, present: Callable[[], np.ndarray], ds: Dataset, index: int, window: Window | None
) -> np.ndarray:
    """VOI stage: the requested or file window, else the VOI LUT, else min-max of the ``present`` values."""
    chosen = window or file_window(ds, index)
    if chosen is not None:
        return np.asarray(_apply_window(modality, chosen), dtype=np.float64)
    if window is None:
        via_lut = _voi_lut(modality, ds)
        if via_lut is not None:
            return via_lut
    values = present()
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    if finite.size == 0:
        return np.zeros(modality.shape, dtype=np.float64)
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        return np.zeros(modality.shape, dtype=np.float64)
    scaled = (np.nan_to_num(modality, nan=low) - low) * (255.0 / (high - low))
    return np.asarray(np.clip(scaled, 0.0, 255.0), dtype=np.float64)


def _to_uint8(levels: np.ndarray) -> np.ndarray:
    """Round 0..255 levels to bytes; NaN (float pixel data) shows as black."""
    return np.asarray(np.rint(np.nan_to_num(levels, nan=0.0)), dtype=np.uint8)


def _shows_inverted(ds: Dataset) -> bool:
    """MONOCHROME1 (C.7.6.3.1.2), or MONOCHROME2 with Presentation LUT Shape INVERSE (2050,0020), C.11.6.

    For MONOCHROME1 the standard pairs INVERSE with the photometric inversion itself (C.8.11.6),
    so it is not applied twice.
    """
    photometric = text(ds, "PhotometricInterpretation")
    if photometric == "MONOCHROME1":
        return True
    shape = text(ds, "PresentationLUTShape")
    return photometric == "MONOCHROME2" and shape == "INVERSE"


def _gather(lut: np.ndarray, stored: np.ndarray, low: int) -> np.ndarray:
    """``lut[stored - low]`` without widening the frame: 8/16-bit data index a table by bit pattern."""
    if stored.dtype.kind in "iu" and stored.dtype.itemsize <= 2:
        patterns = np.arange(low, low + len(lut), dtype=np.int64) & ((1 << (8 * stored.dtype.itemsize)) - 1)
        table = np.zeros(1 << (8 * stored.dtype.itemsize), dtype=np.uint8)
        table[patterns] = lut
        return np.asarray(table[stored.view(f"u{stored.dtype.itemsize}")])
    return lut[stored.astype(np.int64) - low]


def _render_grey(stored: np.ndarray, ds: Dataset, index: int, window: Window | None) -> np.ndarray:
    invert = _shows_inverted(ds)
    if not stored.dtype.isnative:  # big endian data (PS3.5 A.3) decoded as-is
        stored = stored.astype(stored.dtype.newbyteorder("="))
    if stored.dtype.kind in "iub" and stored.size:
        stored = stored.astype(np.uint8) if stored.dtype.kind == "b" else stored
        low, high = int(stored.min()), int(stored.max())
        if high - low < LUT_DOMAIN_LIMIT:
            domain = np.arange(low, high + 1, dtype=np.int64)
            modality = _modality(domain, ds, index)

            def present() -> np.ndarray:
                if not ds.get("ModalityLUTSequence"):  # a linear rescale is monotonic: the ends suffice
                    return modality[[0, -1]]
                counts = np.bincount((stored.reshape(-1).astype(np.int64) - low), minlength=len(domain))
                return modality[counts > 0]

            lut = _to_uint8(_grey_levels(modality, present, ds, index, window))
            return _gather(255 - lut if invert else lut, stored, low)
    modality = _modality(stored, ds, index)
    out = _to_uint8(_grey_levels(modality, lambda: modality, ds, index, window))
    return 255 - out if invert else out


def _render_colour(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """RGB as decoded, scaled to 8 bits by the stored depth (C.7.6.3.1.2)."""
    if stored.dtype == np.uint8:
        return stored
    if stored.dtype.kind == "f":
        return _to_uint8(np.clip(_min_max(stored), 0, 255))
    bits = min(optional_int(ds, "BitsStored") or stored.dtype.itemsize * 8, stored.dtype.itemsize * 8)
    top = float((1 << bits) - 1)
    return _to_uint8(np.clip(stored.astype(np.float64) * (255.0 / top), 0.0, 255.0))


def to_display(stored: np.ndarray, ds: Dataset, index: int = 0, window: Window | None = None) -> np.ndarray:
    """The 8-bit (rows, columns) grey or (rows, columns, 3) RGB picture of one decoded frame."""
    photometric = text(ds, "PhotometricInterpretation", "MONOCHROME2")
    if photometric == "PALETTE COLOR" and stored.ndim == 2:
        return apply_palette(stored, ds)
    if stored.ndim == 3:
        return _render_colour(stored, ds)
    if stored.ndim != 2:
        raise NotRenderable(f"unexpected decoded pixel shape {stored.shape}")
    return _render_grey(stored, ds, index, window)
