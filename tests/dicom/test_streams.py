"""Decompression bombs: a frame whose own stream header declares more than the DICOM header, refused unread."""

from __future__ import annotations

import time
from functools import cache
from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom import uid

from app.dicom.image_pixel import ImagePixel
from app.dicom.ingest import read_header
from app.dicom.pixels import check_before_decoding
from app.dicom.streams import check_frame, stream_header
from app.errors import NotRenderable
from app.services.renders import Encoding, RenderRequest, render_file
from tests.hostile.builders import declare_size, encapsulated

SIDE = 16
BUDGET = 512 * 1024 * 1024
ENCODING = Encoding(BUDGET, 1, 90)
CODECS = {
    "jpeg": uid.JPEGBaseline8Bit,
    "jpeg-lossless": uid.JPEGLosslessSV1,
    "jpeg-ls": uid.JPEGLSLossless,
    "j2k": uid.JPEG2000Lossless,
    "jp2": uid.JPEG2000Lossless,
}


@cache
def small_stream(codec: str) -> bytes:
    """A real 16 x 16 8-bit stream of the codec, made by imagecodecs."""
    image = (np.arange(SIDE * SIDE) % 251).astype(np.uint8).reshape(SIDE, SIDE)
    if codec == "jpeg":
        return bytes(imagecodecs.jpeg8_encode(image, level=95))
    if codec == "jpeg-lossless":
        return bytes(imagecodecs.ljpeg_encode(image))
    if codec == "jpeg-ls":
        return bytes(imagecodecs.jpegls_encode(image))
    return bytes(imagecodecs.jpeg2k_encode(image, level=0, codecformat="JP2" if codec == "jp2" else "J2K"))


def header(rows: int = SIDE, columns: int = SIDE) -> ImagePixel:
    return ImagePixel(rows, columns, 1, 1, 8, 8, 0, "MONOCHROME2", 0)


@pytest.mark.parametrize("codec", sorted(CODECS))
def test_the_real_stream_header_is_read_and_renders(tmp_path: Path, codec: str) -> None:
    stream = small_stream(codec)
    declared = stream_header(CODECS[codec], stream)
    assert declared is not None and (declared.rows, declared.columns, declared.components) == (SIDE, SIDE, 1)
    check_frame(CODECS[codec], stream, header(), BUDGET)
    path = tmp_path / "ok.dcm"
    path.write_bytes(encapsulated(stream, CODECS[codec], SIDE, SIDE))
    assert render_file(path, None, RenderRequest(), ENCODING).startswith(b"\x89PNG")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    codec=st.sampled_from(sorted(CODECS)),
    rows=st.integers(1, 65535),
    columns=st.integers(1, 65535),
)
def test_streams_declaring_more_than_the_header_are_refused_unread(
    tmp_path: Path, codec: str, rows: int, columns: int
) -> None:
    stream = declare_size(small_stream(codec), rows, columns)
    path = tmp_path / "bomb.dcm"
    path.write_bytes(encapsulated(stream, CODECS[codec], SIDE, SIDE))
    started = time.perf_counter()
    if rows <= SIDE and columns <= SIDE:  # no bigger than the header: left to the decoder (in the sandbox)
        check_before_decoding(path, read_header(path), 0, BUDGET)
        return
    with pytest.raises(NotRenderable, match=f"declares {columns} x {rows} pixels, more than"):
        render_file(path, None, RenderRequest(), ENCODING)
    assert time.perf_counter() - started < 2


def test_a_stream_larger_than_the_budget_is_refused_even_when_the_header_agrees() -> None:
    stream = declare_size(small_stream("j2k"), 40000, 40000)
    with pytest.raises(NotRenderable, match="more than the limit"):
        check_frame(uid.JPEG2000Lossless, stream, header(40000, 40000), BUDGET)


def test_an_impossible_tile_grid_is_refused() -> None:
    stream = bytearray(declare_size(small_stream("j2k"), 60000, 60000))
    at = stream.find(b"\xff\x4f\xff\x51")
    stream[at + 24 : at + 32] = (1).to_bytes(4, "big") * 2  # 1 x 1 tiles: 3.6e9 of them
    with pytest.raises(NotRenderable, match="tiles"):
        check_frame(uid.JPEG2000Lossless, bytes(stream), header(60000, 60000), 1 << 40)


def test_jpeg_ls_oversize_dimensions_in_lse_are_read() -> None:
    """T.87 C.2.4.1.4: SOF55 with X = Y = 0 and the size in an LSE segment of ID 4."""
    stream = bytearray(declare_size(small_stream("jpeg-ls"), 0, 0))
    sof = stream.find(b"\xff\xf7")
    end = sof + 2 + int.from_bytes(stream[sof + 2 : sof + 4], "big")
    lse = b"\xff\xf8\x00\x0b\x04\x03" + (70000).to_bytes(3, "big") + (80000).to_bytes(3, "big")
    declared = stream_header(uid.JPEGLSLossless, bytes(stream[:end] + lse + stream[end:]))
    assert declared is not None and (declared.rows, declared.columns) == (70000, 80000)


@pytest.mark.anyio
@pytest.mark.parametrize("codec", sorted(CODECS))
async def test_65535_square_bombs_answer_422_within_2_seconds(client: httpx.AsyncClient, codec: str) -> None:
    data = encapsulated(declare_size(small_stream(codec), 65535, 65535), CODECS[codec], 64, 64)
    upload = await client.post("/upload", files={"file": (f"{codec}.dcm", data)})
    assert upload.status_code == 201, upload.text
    started = time.perf_counter()
    response = await client.get(f"/dicomFile/{upload.json()['name']}?png")
    assert response.status_code == 422, response.text
    assert "declares 65535 x 65535 pixels" in response.json()["error"]
    assert time.perf_counter() - started < 2


@pytest.mark.anyio
async def test_dicomweb_decoding_refuses_bombs_from_the_stream_header(client: httpx.AsyncClient) -> None:
    """Decoded frames and transcoded retrieves (PS3.18 10.4) apply the same stream-header check as ?png."""
    from io import BytesIO

    from pydicom import dcmread

    dataset = dcmread(BytesIO(encapsulated(declare_size(small_stream("jpeg"), 65535, 65535), CODECS["jpeg"], 64, 64)))
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = uid.generate_uid(), uid.generate_uid()
    out = BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    assert (await client.post("/upload", files={"file": ("bomb.dcm", out.getvalue())})).status_code == 201
    instance = (
        f"/dicom-web/studies/{dataset.StudyInstanceUID}/series/{dataset.SeriesInstanceUID}"
        f"/instances/{dataset.SOPInstanceUID}"
    )
    started = time.perf_counter()
    frames = await client.get(
        f"{instance}/frames/1", headers={"Accept": 'multipart/related; type="application/octet-stream"'}
    )
    assert frames.status_code == 422 and "declares 65535 x 65535 pixels" in frames.json()["error"], frames.text
    retrieve = await client.get(instance, headers={"Accept": 'multipart/related; type="application/dicom"'})
    assert retrieve.status_code == 406 and "declares 65535 x 65535 pixels" in retrieve.json()["error"], retrieve.text
    assert time.perf_counter() - started < 2
