"""VOI functions, float data, presentation shape, corrupt streams and encoders, on generated files.

Expectations are the formulas of PS3.3 C.11.2.1.2-3 written out here, not our own output.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, generate_frames
from pydicom.uid import UID, ExplicitVRLittleEndian, JPEGBaseline8Bit, JPEGExtended12Bit, generate_uid

from app.dicom.encode import encode_jpeg, encode_png, fit_within
from app.dicom.pixels import decode_frame
from app.dicom.render import Window, to_display
from app.errors import NotRenderable
from tests.conftest import sample

BUDGET = 1 << 28
RAMP = np.arange(-1000, 3000, 4, dtype=np.int16).reshape(20, 50)


def write(
    tmp_path: Path,
    pixels: np.ndarray | None,
    syntax: str = ExplicitVRLittleEndian,
    stream: bytes | None = None,
    **attrs: object,
) -> Path:
    """A minimal image file; ``stream`` (one compressed frame) is encapsulated for compressed syntaxes."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape[:2]
        ds.BitsAllocated = ds.BitsStored = pixels.dtype.itemsize * 8
        ds.HighBit = ds.BitsStored - 1
        ds.PixelRepresentation = int(pixels.dtype.kind == "i")
        ds.PixelData = pixels.tobytes() if stream is None else encapsulate([stream])
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.file_meta = Dataset()  # type: ignore[assignment]
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    path = tmp_path / f"{generate_uid()}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def render(path: Path, window: Window | None = None, frame: int = 0) -> np.ndarray:
    ds = dcmread(path, defer_size=1024, force=True)
    return to_display(decode_frame(path, ds, frame, BUDGET), ds, frame, window)


def test_voi_lut_function_linear_exact(tmp_path: Path) -> None:
    path = write(tmp_path, RAMP, WindowCenter=500, WindowWidth=1000, VOILUTFunction="LINEAR_EXACT")
    expected = np.clip(((RAMP - 500.0) / 1000 + 0.5) * 255, 0, 255)
    np.testing.assert_array_equal(render(path), np.rint(expected))


def test_voi_lut_function_sigmoid(tmp_path: Path) -> None:
    path = write(tmp_path, RAMP, WindowCenter=500, WindowWidth=1000, VOILUTFunction="SIGMOID")
    expected = 255 / (1 + np.exp(-4 * (RAMP - 500.0) / 1000))
    np.testing.assert_array_equal(render(path), np.rint(expected))


def test_window_override_uses_the_linear_function(tmp_path: Path) -> None:
    path = write(tmp_path, RAMP, WindowCenter=500, WindowWidth=1000, VOILUTFunction="SIGMOID")
    expected = np.clip(((RAMP - (0 - 0.5)) / (400 - 1) + 0.5) * 255, 0, 255)
    np.testing.assert_array_equal(render(path, Window(0, 400)), np.rint(expected))


def test_float_pixel_data_min_max_and_nan(tmp_path: Path) -> None:
    """Float Pixel Data (7FE0,0008), PS3.3 C.7.6.24: no rescale; min-max over finite values, NaN black."""
    values = np.linspace(-1.5, 2.5, 64, dtype=np.float32).reshape(8, 8)
    values[0, 0] = np.nan
    ds_path = write(tmp_path, None, BitsAllocated=32, Rows=8, Columns=8, FloatPixelData=values.tobytes())
    shown = render(ds_path)
    finite = values[np.isfinite(values)]
    expected = np.rint((values - finite.min()) / (finite.max() - finite.min()) * 255)
    expected[0, 0] = 0
    np.testing.assert_array_equal(shown, expected)


def test_presentation_lut_shape_inverse_inverts_monochrome2(tmp_path: Path) -> None:
    plain = render(write(tmp_path, RAMP, WindowCenter=500, WindowWidth=1000))
    inverse = render(write(tmp_path, RAMP, WindowCenter=500, WindowWidth=1000, PresentationLUTShape="INVERSE"))
    np.testing.assert_array_equal(inverse, 255 - plain)
    mono1 = render(write(tmp_path, RAMP, PhotometricInterpretation="MONOCHROME1", PresentationLUTShape="INVERSE"))
    assert mono1[0, 0] == 255 and mono1[-1, -1] == 0  # inverted once, not twice


def test_bits_stored_masks_unused_high_bits(tmp_path: Path) -> None:
    """Bits Stored 12 in 16 allocated (PS3.5 8.1.1): bits above High Bit (e.g. overlays) are not pixel values."""
    values = np.array([[0, 1000, 4095, 2048]], dtype=np.uint16)
    path = write(tmp_path, values | 0xF000, BitsStored=12, HighBit=11)
    np.testing.assert_array_equal(decode_frame(path, dcmread(path), 0, BUDGET), values)


def test_corrupt_jpeg_stream_is_refused(tmp_path: Path) -> None:
    good = dcmread(sample("SC_rgb_jpeg_dcmtk.dcm"))
    ds = good.copy()
    frame = bytearray(next(generate_frames(good.PixelData, number_of_frames=1)))
    frame[len(frame) // 3 : len(frame) // 3 + 200] = b"\xff" * 200  # marker soup in the entropy-coded data
    ds.PixelData = encapsulate([bytes(frame[: len(frame) // 2])])
    path = tmp_path / "corrupt.dcm"
    ds.save_as(path)
    with pytest.raises(NotRenderable, match="could not be decoded"):
        decode_frame(path, dcmread(path), 0, BUDGET)


def test_twelve_bit_jpeg_of_a_known_gradient(tmp_path: Path) -> None:
    """A 12-bit JPEG Extended stream (Process 4) made here from a known image decodes close to it."""
    import imagecodecs

    gradient = (np.add.outer(np.arange(64), np.arange(64)) * 32).astype(np.uint16)
    stream = bytes(imagecodecs.jpeg8_encode(gradient, level=95, bitspersample=12))
    path = write(tmp_path, gradient, JPEGExtended12Bit, stream, BitsStored=12, HighBit=11)
    decoded = decode_frame(path, dcmread(path), 0, BUDGET).astype(np.float64)
    assert np.abs(decoded - gradient).mean() < 8


def test_bytes_that_are_not_a_jpeg_stream_are_refused(tmp_path: Path) -> None:
    pixels = RAMP.astype(np.uint8)
    path = write(tmp_path, pixels, JPEGBaseline8Bit, pixels.tobytes())  # raw bytes declared as a JPEG stream
    with pytest.raises(NotRenderable):
        decode_frame(path, dcmread(path), 0, BUDGET)


@pytest.mark.parametrize("level", [0, 1, 3, 6])
@pytest.mark.parametrize("shape", [(7, 5), (31, 17, 3), (1, 1)])
def test_png_is_lossless_at_every_level(level: int, shape: tuple[int, ...]) -> None:
    image = np.random.default_rng(level).integers(0, 256, size=shape, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(encode_png(image, level)))), image)


def test_jpeg_quality_changes_size() -> None:
    image = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    low, high = encode_jpeg(image, 10), encode_jpeg(image, 95)
    assert Image.open(io.BytesIO(low)).format == "JPEG" and len(low) < len(high)


def test_fit_within_keeps_aspect_and_never_enlarges() -> None:
    image = np.zeros((300, 120), dtype=np.uint8)
    image[:, 60:] = 255
    small = fit_within(image, 100)
    assert small.shape == (100, 40)
    assert small[:, :18].max() <= 2 and small[:, 22:].min() >= 253  # a clean edge, little ringing
    assert fit_within(image, 1000).shape == (300, 120)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("MR_truncated.dcm", "truncated"), ("emri_small_jpeg_2k_lossless_too_short.dcm", "")],
)
def test_files_cut_short_are_refused_not_drawn(name: str, fragment: str) -> None:
    path = sample(name)
    with pytest.raises(NotRenderable, match=fragment or None):
        decode_frame(path, dcmread(path, defer_size=1024, force=True), 9 if "emri" in name else 0, BUDGET)
