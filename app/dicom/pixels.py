"""Decode one frame of stored pixel values, refusing what cannot be decoded faithfully.

Guards run before any decoding: the Image Pixel module is read strictly with a pixel budget
(:mod:`app.dicom.image_pixel`), native (uncompressed) Pixel Data must hold what the header
declares, and a compressed frame's own stream header may not declare more than the DICOM
header or the budget (:mod:`app.dicom.streams`).

Frames are read from where the parsed header says the Pixel Data value starts, so only the
requested frame is read and the element encoding the reader found is trusted (a data set
written implicit VR under an explicit VR transfer syntax still renders). Native data is read
as the header describes it, as DCMTK does: trailing padding, an odd-length pad byte or 8-bit
values stored in 16-bit words contribute only the bytes the header accounts for.
"""

from __future__ import annotations

import io
import logging
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, get_frame
from pydicom.pixels.decoders.base import Decoder, get_decoder
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian

from app.dicom import codecs, video, video_media
from app.dicom.image_pixel import ImagePixel, optional_float, read_image_pixel
from app.dicom.streams import check_frame
from app.dicom.video_streams import VideoCodec
from app.errors import InvalidRequest, LightboxError, NotRenderable, UnsupportedEncoding

codecs.install()  # pydicom's decoder registry is process-wide; registering is idempotent

log = logging.getLogger("lightbox.pixels")

PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # Pixel Data, Float, Double Float
PIXEL_KEYWORDS = {0x7FE00010: "PixelData", 0x7FE00008: "FloatPixelData", 0x7FE00009: "DoubleFloatPixelData"}
UNDEFINED_LENGTH = 0xFFFFFFFF


def transfer_syntax(ds: Dataset) -> UID:
    """The dataset's transfer syntax; a bare data set is read as Implicit VR Little Endian."""
    meta = getattr(ds, "file_meta", None)
    try:
        value = meta.get("TransferSyntaxUID") if meta is not None else None
    except Exception:  # a malformed meta element: treated as absent (pydicom guessed the encoding)
        value = None
    text = str(value).strip("\x00 ") if value else ""
    return UID(text) if text else ImplicitVRLittleEndian


def pixel_data_tag(ds: Dataset) -> int:
    """The tag holding this file's pixels, or :class:`NotRenderable` when there is none."""
    for tag in PIXEL_DATA_TAGS:
        if tag in ds:
            return tag
    raise NotRenderable("this file has no image: it holds no Pixel Data element")


def geometry(ds: Dataset, max_pixels: int, per_frame: bool = False) -> ImagePixel:
    """Read and sanity-check the declared image before anything is decoded."""
    return read_image_pixel(ds, max_pixels, per_frame)


def _decoder(syntax: UID) -> tuple[Decoder, str]:
    """pydicom's decoder for ``syntax`` and the plugin to use ("" for any); 415 naming the UID when none."""
    if syntax in codecs.RETIRED_JPEG_SYNTAXES:
        retired = codecs.retired_jpeg_decoder()
        if retired is None:
            raise UnsupportedEncoding(f"no installed decoder handles the transfer syntax {syntax.name} ({syntax})")
        return retired
    if not syntax.is_transfer_syntax:
        kind = "private" if syntax.is_private else "unknown"
        raise UnsupportedEncoding(
            f"the transfer syntax {str(syntax)[:64]!r} is {kind}: no decoder of this service handles it"
        )
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise UnsupportedEncoding(
            f"no installed decoder handles the transfer syntax {syntax.name} ({str(syntax)[:64]})"
        ) from None
    if not decoder.is_available:
        raise UnsupportedEncoding(f"no installed decoder handles the transfer syntax {syntax.name} ({syntax})")
    return decoder, ""


def _value_source(stack: ExitStack, path: Path, ds: Dataset, tag: int, syntax: UID) -> tuple[BinaryIO, int, str]:
    """A file positioned at the first byte of the pixel value, the bytes available from there, and its VR.

    Deferred values are read in place (the offset the reader recorded); values already in memory,
    and deflated data sets (whose offsets count inflated bytes), are served from memory.
    """
    raw = ds.get_item(tag, keep_deferred=True)
    if isinstance(raw, RawDataElement) and raw.value is None and syntax != DeflatedExplicitVRLittleEndian:
        handle = stack.enter_context(path.open("rb"))
        size = path.stat().st_size
        available = max(size - raw.value_tell, 0)
        if raw.length != UNDEFINED_LENGTH:
            available = min(raw.length, available)
        handle.seek(raw.value_tell)
        return handle, available, str(raw.VR or "")
    if syntax == DeflatedExplicitVRLittleEndian and isinstance(raw, RawDataElement) and raw.value is None:
        ds = dcmread(path, force=True)
    value = ds[tag].value
    if not isinstance(value, (bytes, bytearray)):
        raise NotRenderable("the Pixel Data element does not hold bytes")
    return io.BytesIO(value), len(value), str(ds[tag].VR or "")


def _check_native_length(image: ImagePixel, available: int, frames: int) -> None:
    """Refuse native Pixel Data shorter than the header declares: it would be a wrong picture."""
    expected = (image.rows * image.columns * image.samples * image.bits_allocated * frames + 7) // 8
    if image.samples == 3 and image.photometric == "YBR_FULL_422":
        expected = image.frame_bytes() * frames
    if available < expected:
        raise NotRenderable(
            f"Pixel Data is shorter than the header declares ({available} of {expected} bytes): the file is truncated"
        )


def _decode_native(
    decoder: Decoder, source: BinaryIO, available: int, image: ImagePixel, index: int, opts: dict[str, Any]
) -> np.ndarray | None:
    """One native frame, reading exactly the bytes the header describes for it (PS3.5 8.1.1)."""
    _check_native_length(image, available, image.frames)
    if not opts.pop("decode"):
        return None
    array, _ = decoder.as_array(source, index=index, validate=True, **opts)
    return array


def _decode_encapsulated(
    decoder: Decoder, source: BinaryIO, syntax: UID, image: ImagePixel, index: int, opts: dict[str, Any], budget: int
) -> np.ndarray | None:
    """One compressed frame: its fragments gathered (PS3.5 A.4), its stream header checked, then decoded."""
    try:
        frame = get_frame(
            source, index, extended_offsets=opts.pop("extended_offsets", None), number_of_frames=image.frames
        )
    except (ValueError, KeyError, IndexError, EOFError, OSError) as exc:
        log.debug("gathering frame %d failed: %s", index + 1, exc)
        raise NotRenderable(
            f"the encapsulated pixel data is malformed ({syntax.name}): frame {index + 1} could not be found"
        ) from None
    check_frame(syntax, frame, image, budget)
    if not opts.pop("decode"):
        return None
    single = encapsulate([frame])
    opts["number_of_frames"] = 1
    array, _ = decoder.as_array(single, index=0, validate=True, **opts)
    return array


def decode_frame(path: Path, ds: Dataset, index: int, max_pixels: int) -> np.ndarray:
    """Stored values of frame ``index`` (0-based), read from ``path`` without decoding other frames.

    Returns (rows, columns) or (rows, columns, 3) with YBR converted to RGB, as pydicom does.
    """
    decoded = _frame(path, ds, index, max_pixels, decode=True)
    assert decoded is not None
    return decoded


def check_before_decoding(path: Path, ds: Dataset, index: int, max_pixels: int) -> None:
    """Every refusal :func:`decode_frame` makes before a decoder runs (header, lengths, stream header).

    Pure Python over the header and one frame's bytes: safe outside the decode sandbox, so a bomb
    or an unknown transfer syntax is answered without starting a worker process.
    """
    _frame(path, ds, index, max_pixels, decode=False)


def _video_frame(path: Path, ds: Dataset, index: int, max_pixels: int, decode: bool) -> np.ndarray | None:
    """One frame of a video transfer syntax (PS3.5 8.2.5-8.2.7): the bitstream's head checked, then decoded."""
    tag = pixel_data_tag(ds)
    syntax = transfer_syntax(ds)
    image = geometry(ds, max_pixels, per_frame=True)
    if not 0 <= index < image.frames:
        raise InvalidRequest(f"frame {index + 1} is out of range: this file has {image.frames} frame(s)")
    with ExitStack() as stack:
        source, _available, _vr = _value_source(stack, path, ds, tag, syntax)
        start = source.tell()
        video.check_head(syntax, source, image, max_pixels)
        if not decode:
            return None
        source.seek(start)
        return video.decode_video_frame(syntax, source, image, index, max_pixels)


def video_file(path: Path, ds: Dataset, max_pixels: int) -> tuple[bytes, str]:
    """The stored video as PS3.18 rendered media (content, media type); see :mod:`app.dicom.video_media`.

    MPEG-2 is its stored elementary stream; H.264 and HEVC are remuxed into MP4 (native code: sandbox only).
    """
    syntax = transfer_syntax(ds)
    if not video.is_video(syntax):
        raise NotRenderable(f"this file holds no video: its transfer syntax is {syntax.name} ({str(syntax)[:64]})")
    tag = pixel_data_tag(ds)
    image = geometry(ds, max_pixels, per_frame=True)
    frame_time = optional_float(ds, "FrameTime")
    rate = optional_float(ds, "CineRate")
    if frame_time is None and rate:
        frame_time = 1000.0 / rate
    media_type = video.VIDEO_SYNTAXES[syntax].media_type
    with ExitStack() as stack:
        source, _available, _vr = _value_source(stack, path, ds, tag, syntax)
        chunks = video.fragments(source)
        if video.VIDEO_SYNTAXES[syntax].codec is VideoCodec.MPEG2:
            return b"".join(chunks), media_type
        ticks = video_media.frame_ticks(frame_time)
        return video_media.remux(syntax, chunks, image, max_pixels, ticks), media_type


def _frame(path: Path, ds: Dataset, index: int, max_pixels: int, decode: bool) -> np.ndarray | None:
    if video.is_video(transfer_syntax(ds)):
        return _video_frame(path, ds, index, max_pixels, decode)
    tag = pixel_data_tag(ds)
    syntax = transfer_syntax(ds)
    decoder, plugin = _decoder(syntax)
    image = geometry(ds, max_pixels)
    if not 0 <= index < image.frames:
        raise InvalidRequest(f"frame {index + 1} is out of range: this file has {image.frames} frame(s)")
    opts: dict[str, Any] = {**image.decode_options(), "pixel_keyword": PIXEL_KEYWORDS[tag], "decode": decode}
    opts["decoding_plugin"] = plugin
    try:
        if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds:
            opts["extended_offsets"] = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        with ExitStack() as stack:
            source, available, vr = _value_source(stack, path, ds, tag, syntax)
            opts["pixel_vr"] = vr
            if not syntax.is_compressed:
                return _decode_native(decoder, source, available, image, index, opts)
            return _decode_encapsulated(decoder, source, syntax, image, index, opts, max_pixels)
    except LightboxError:
        raise
    except (MemoryError, RecursionError):
        raise NotRenderable("the pixel data could not be decoded within the service's limits") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # decoders raise many types on corrupt streams, pyo3 ones a PanicException
        log.info("decoding a frame failed: %s", type(exc).__name__)
        log.debug("decoding frame %d failed: %s", index + 1, exc)
        kind = "compressed stream is corrupt or uses a feature no installed decoder supports"
        if not syntax.is_compressed:
            kind = "pixel data does not match what the header declares"
        raise NotRenderable(f"the image could not be decoded ({syntax.name}): the {kind}") from None
