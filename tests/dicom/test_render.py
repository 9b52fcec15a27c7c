"""The render pipeline against pydicom's own implementation of PS3.3 C.11 and hand-made files."""

from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut, apply_modality_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from app.dicom.pixels import decode_frame
from app.dicom.render import Window, to_display
from app.errors import InvalidRequest, NotRenderable
from tests.conftest import sample

BUDGET = 1 << 28


def render(path: Path, frame: int = 0, window: Window | None = None) -> np.ndarray:
    ds = dcmread(path, defer_size=1024, force=True)
    return to_display(decode_frame(path, ds, frame, BUDGET), ds, frame, window)


def reference_grey(path: Path) -> np.ndarray:
    """Independent pipeline: pydicom's decoder and modality LUT, then the PS3.3 C.11.2.1.2.1 formula."""
    ds = dcmread(path)
    values = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
    if "WindowCenter" in ds:
        c, w = float(np.atleast_1d(ds.WindowCenter)[0]), float(np.atleast_1d(ds.WindowWidth)[0])
        scaled = np.clip(((values - (c - 0.5)) / (w - 1) + 0.5) * 255, 0, 255)
    else:
        scaled = (values - values.min()) / (values.max() - values.min()) * 255
    if ds.PhotometricInterpretation == "MONOCHROME1":
        scaled = 255 - scaled
    return scaled


@pytest.mark.parametrize("name", ["CT_small.dcm", "MR_small.dcm", "MR_small_RLE.dcm", "JPEG2000.dcm", "MR2_UNCR.dcm"])
def test_grey_matches_an_independent_pipeline(name: str) -> None:
    ours = render(sample(name)).astype(np.float64)
    assert ours.dtype == np.float64 and ours.shape == reference_grey(sample(name)).shape
    assert np.abs(ours - reference_grey(sample(name))).mean() < 1.0


def test_window_override_changes_the_picture() -> None:
    default = render(sample("CT_small.dcm"))
    narrow = render(sample("CT_small.dcm"), window=Window(40, 80))
    assert not np.array_equal(default, narrow)
    assert narrow.min() == 0 and narrow.max() == 255


def make_grey(tmp_path: Path, photometric: str, pixels: np.ndarray, **attrs: object) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.file_meta = Dataset()  # type: ignore[assignment]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    path = tmp_path / f"{photometric}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def test_monochrome1_is_inverted_after_windowing(tmp_path: Path) -> None:
    ramp = np.tile(np.arange(0, 1000, 10, dtype=np.uint16), (4, 1))
    mono2 = render(make_grey(tmp_path, "MONOCHROME2", ramp))
    mono1 = render(make_grey(tmp_path, "MONOCHROME1", ramp))
    assert mono2[0, 0] == 0 and mono2[0, -1] == 255
    np.testing.assert_array_equal(mono1, 255 - mono2)


def test_rescale_then_window(tmp_path: Path) -> None:
    values = np.array([[0, 1000, 2000, 3000]], dtype=np.uint16)
    path = make_grey(
        tmp_path, "MONOCHROME2", values, RescaleSlope=1, RescaleIntercept=-1000, WindowCenter=0, WindowWidth=2000
    )
    # modality values -1000, 0, 1000, 2000 through window 0/2000 (PS3.3 C.11.2.1.2.1)
    expected = np.clip(((np.array([-1000, 0, 1000, 2000]) + 0.5) / 1999 + 0.5) * 255, 0, 255)
    np.testing.assert_allclose(render(path)[0], np.rint(expected), atol=0)


def test_rgb_is_kept() -> None:
    path = sample("SC_rgb.dcm")
    np.testing.assert_array_equal(render(path), dcmread(path).pixel_array)


def test_palette_colour() -> None:
    path = sample("OBXXXX1A.dcm")
    ds = dcmread(path)
    expected = apply_color_lut(ds.pixel_array, ds).astype(np.float64) / 65535 * 255
    assert np.abs(render(path).astype(np.float64) - expected).mean() < 0.6


def test_frame_out_of_range_and_missing_pixels(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="out of range"):
        render(sample("CT_small.dcm"), frame=1)
    ds = dcmread(sample("rtplan.dcm"))
    with pytest.raises(NotRenderable, match="no Pixel Data"):
        decode_frame(sample("rtplan.dcm"), ds, 0, BUDGET)


def test_pixel_budget_is_checked_before_decoding(tmp_path: Path) -> None:
    path = make_grey(tmp_path, "MONOCHROME2", np.zeros((2, 2)))
    ds = dcmread(path)
    ds.Rows = ds.Columns = 65535
    with pytest.raises(NotRenderable, match="limit"):
        decode_frame(path, ds, 0, BUDGET)


def test_short_pixel_data_is_refused(tmp_path: Path) -> None:
    path = make_grey(tmp_path, "MONOCHROME2", np.zeros((4, 4)))
    ds = dcmread(path)
    ds.Rows = 8
    with pytest.raises(NotRenderable, match="shorter"):
        decode_frame(path, ds, 0, BUDGET)
