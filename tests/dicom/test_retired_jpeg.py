"""Retired JPEG processes (1.2.840.10008.1.2.4.52-.56) decode through libjpeg-turbo like the baseline stream.

``jpegtran`` rewrites a baseline JPEG losslessly (the same DCT coefficients) as spectral selection,
full progression and/or arithmetic coding; each must decode to exactly the baseline's pixels.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from app.dicom.pixels import decode_frame
from tests.hostile.builders import encapsulated, progressive_scan_bomb

JPEGTRAN = shutil.which("jpegtran")
needs_jpegtran = pytest.mark.skipif(JPEGTRAN is None, reason="libjpeg-turbo-progs is installed by scripts/test")
SPECTRAL_ONLY = "0: 0 0 0 0;\n0: 1 5 0 0;\n0: 6 63 0 0;\n"  # bands, no successive approximation
COLOUR_SPECTRAL_ONLY = "0 1 2: 0 0 0 0;\n0: 1 63 0 0;\n1: 1 63 0 0;\n2: 1 63 0 0;\n"
CASES = {
    "1.2.840.10008.1.2.4.52": ["-arithmetic"],  # Extended, Process 3 & 5
    "1.2.840.10008.1.2.4.53": ["-scans", "SPECTRAL"],  # Spectral Selection, Process 6 & 8
    "1.2.840.10008.1.2.4.54": ["-arithmetic", "-scans", "SPECTRAL"],  # Process 7 & 9
    "1.2.840.10008.1.2.4.55": ["-progressive"],  # Full Progression, Process 10 & 12
    "1.2.840.10008.1.2.4.56": ["-arithmetic", "-progressive"],  # Process 11 & 13
}


def baseline(colour: bool) -> tuple[bytes, np.ndarray]:
    """A baseline JPEG (Pillow, 4:4:4 for colour) and libjpeg-turbo's decode of it."""
    ramp = np.add.outer(np.arange(40), np.arange(56)).astype(np.uint8) * 3
    image = np.stack([ramp, ramp[::-1], 255 - ramp], axis=-1) if colour else ramp
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=92, subsampling=0)
    data = buffer.getvalue()
    space = "YCbCr" if colour else None
    return data, np.asarray(imagecodecs.jpeg8_decode(data, colorspace=space, outcolorspace=space))


def rewrite(data: bytes, args: list[str], tmp_path: Path, colour: bool) -> bytes:
    script = tmp_path / "scans.txt"
    script.write_text(COLOUR_SPECTRAL_ONLY if colour else SPECTRAL_ONLY)
    command = [str(JPEGTRAN), *(str(script) if a == "SPECTRAL" else a for a in args)]
    return subprocess.run(command, input=data, capture_output=True, check=True, timeout=60).stdout


def store(tmp_path: Path, stream: bytes, syntax: str, colour: bool) -> Path:
    path = tmp_path / f"{syntax}.dcm"
    path.write_bytes(encapsulated(stream, syntax, 40, 56, samples=3 if colour else 1))
    if colour:  # the stream is YCbCr: say so, so that it is converted to RGB after decoding
        ds = dcmread(path)
        ds.PhotometricInterpretation = "YBR_FULL"
        ds.save_as(path)
    return path


@needs_jpegtran
@pytest.mark.parametrize("colour", [False, True], ids=["grey", "colour"])
@pytest.mark.parametrize("syntax", sorted(CASES))
def test_retired_process_decodes_like_the_baseline_stream(tmp_path: Path, syntax: str, colour: bool) -> None:
    data, expected = baseline(colour)
    stream = rewrite(data, CASES[syntax], tmp_path, colour)
    assert stream != data
    path = store(tmp_path, stream, syntax, colour)
    decoded = decode_frame(path, dcmread(path, defer_size=1024), 0, 1 << 24)
    if colour:  # pydicom converts YBR_FULL to RGB; do the same to the baseline decode
        from pydicom.pixels.processing import convert_color_space

        expected = convert_color_space(expected, "YBR_FULL", "RGB")
    np.testing.assert_array_equal(decoded, expected)


def test_pillow_progressive_stream_decodes_like_its_baseline(tmp_path: Path) -> None:
    """No jpegtran needed: Pillow writes the same coefficients progressively."""
    ramp = (np.add.outer(np.arange(40), np.arange(56)) * 3 % 256).astype(np.uint8)
    streams = []
    for progressive in (False, True):
        buffer = io.BytesIO()
        Image.fromarray(ramp).save(buffer, "JPEG", quality=85, progressive=progressive)
        streams.append(buffer.getvalue())
    assert b"\xff\xc2" in streams[1]
    path = store(tmp_path, streams[1], "1.2.840.10008.1.2.4.55", False)
    decoded = decode_frame(path, dcmread(path, defer_size=1024), 0, 1 << 24)
    np.testing.assert_array_equal(decoded, imagecodecs.jpeg8_decode(streams[0]))


def test_12_bit_full_progression(tmp_path: Path) -> None:
    """A 12-bit progressive stream (SOF2, P = 12) of a flat image: every sample decodes to 2048."""
    path = tmp_path / "p12.dcm"
    stream = progressive_scan_bomb(64, 64, bands=2, precision=12)
    path.write_bytes(encapsulated(stream, "1.2.840.10008.1.2.4.55", 64, 64, bits=16))
    ds = dcmread(path)
    ds.BitsStored, ds.HighBit = 12, 11
    ds.save_as(path)
    decoded = decode_frame(path, dcmread(path, defer_size=1024), 0, 1 << 24)
    assert decoded.shape == (64, 64) and decoded.dtype == np.uint16
    assert np.all(decoded == 2048)


@pytest.mark.anyio
async def test_progressive_renders_over_http(client: httpx.AsyncClient, tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 56), 200, np.uint8)).save(buffer, "JPEG", progressive=True)
    data = encapsulated(buffer.getvalue(), "1.2.840.10008.1.2.4.55", 40, 56)
    upload = await client.post("/upload", files={"file": ("progressive.dcm", data)})
    assert upload.status_code == 201, upload.text
    response = await client.get(f"/dicomFile/{upload.json()['name']}?png")
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(response.content)).size == (56, 40)


@pytest.mark.anyio
async def test_hierarchical_jpeg_still_answers_415_naming_it(client: httpx.AsyncClient) -> None:
    hierarchical = encapsulated(b"\xff\xd8\xff\xd9", "1.2.840.10008.1.2.4.58", 8, 8)  # Process 16 & 18
    upload = await client.post("/upload", files={"file": ("h.dcm", hierarchical)})
    response = await client.get(f"/dicomFile/{upload.json()['name']}?png")
    assert response.status_code == 415, response.text
    assert "Hierarchical" in response.json()["error"] and "1.2.840.10008.1.2.4.58" in response.json()["error"]
