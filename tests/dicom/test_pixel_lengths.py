"""Native Pixel Data longer than the header describes renders as DCMTK renders it (``dcmj2pnm``).

PS3.5 8.1.1 pads odd-length values with one byte; writers also leave trailing bytes, and some
palette files keep 8-bit indices in 16-bit words. DCMTK reads the bytes the header describes
and ignores the rest; so do we, and the two pictures are compared value for value (min-max VOI,
``+Wm``, since neither file carries a window).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from app.services.renders import Encoding, RenderRequest, render_file

ENCODING = Encoding(1 << 30, 1, 90)
DCMJ2PNM = shutil.which("dcmj2pnm")
pytestmark = pytest.mark.skipif(DCMJ2PNM is None, reason="dcmtk is installed by scripts/test (debian-packages.txt)")


def write(
    path: Path,
    values: np.ndarray,
    stored: bytes,
    bits: int,
    *,
    frames: int = 1,
    palette: bool = False,
    big_endian: bool = False,
) -> Path:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns = values.shape[-2:]
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "PALETTE COLOR" if palette else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    if palette:
        ramp = np.arange(256, dtype=np.uint16) * 257
        for colour, table in (("Red", ramp), ("Green", ramp[::-1]), ("Blue", np.zeros(256, np.uint16))):
            setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 0, 16])
            setattr(ds, f"{colour}PaletteColorLookupTableData", table.astype(">u2" if big_endian else "<u2").tobytes())
    ds.PixelData = stored
    ds["PixelData"].VR = "OW" if bits > 8 or (len(stored) % 2 == 0 and palette) else "OB"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian if big_endian else ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def ours(path: Path, frame: int = 1) -> np.ndarray:
    png = render_file(path, None, RenderRequest(frame=frame), ENCODING)
    return np.asarray(Image.open(io.BytesIO(png))).astype(np.int64)


def dcmtk(path: Path, frame: int = 1) -> np.ndarray:
    out = path.with_suffix(".png")
    command = [str(DCMJ2PNM), "+on", "+Wm", "+F", str(frame), str(path), str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    with Image.open(out) as image:
        return np.asarray(image.convert("RGB" if image.mode == "RGB" else "L")).astype(np.int64)


def same_as_dcmtk(path: Path, frame: int = 1) -> np.ndarray:
    picture = ours(path, frame)
    reference = dcmtk(path, frame)
    assert picture.shape == reference.shape
    assert np.abs(picture - reference).max() <= 1  # rounding of the min-max window
    return picture


RNG = np.random.default_rng(9)


def test_odd_length_8_bit_with_its_pad_byte(tmp_path: Path) -> None:
    values = RNG.integers(0, 256, (3, 5), dtype=np.uint8)
    picture = same_as_dcmtk(write(tmp_path / "odd.dcm", values, values.tobytes() + b"\x00", 8))
    assert picture.shape == (3, 5)


@pytest.mark.parametrize("extra", [1, 3, 8, 1000])
def test_trailing_bytes_after_16_bit_data_are_ignored(tmp_path: Path, extra: int) -> None:
    values = RNG.integers(0, 4096, (6, 7), dtype=np.uint16)
    stored = values.astype("<u2").tobytes() + b"\xff" * extra
    same_as_dcmtk(write(tmp_path / "extra.dcm", values, stored + b"\x00" * (len(stored) % 2), 16))


def test_trailing_bytes_after_the_last_frame(tmp_path: Path) -> None:
    values = RNG.integers(0, 256, (3, 4, 6), dtype=np.uint8)
    path = write(tmp_path / "frames.dcm", values, values.tobytes() + b"\x7f" * 10, 8, frames=3)
    for frame in (1, 2, 3):
        same_as_dcmtk(path, frame)


@pytest.mark.parametrize("palette", [False, True], ids=["grey", "palette"])
@pytest.mark.parametrize("big_endian", [False, True], ids=["le", "be"])
def test_8_bit_values_kept_in_16_bit_words(tmp_path: Path, palette: bool, big_endian: bool) -> None:
    """Twice the bytes Bits Allocated 8 needs: the header's bytes are read, as DCMTK reads them."""
    values = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    words = values.astype(">u2" if big_endian else "<u2").tobytes()
    same_as_dcmtk(write(tmp_path / "words.dcm", values, words, 8, palette=palette, big_endian=big_endian))
