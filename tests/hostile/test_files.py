"""Hostile files: every one gets a clear 4xx JSON answer within seconds, and nothing is kept that should not be."""

from __future__ import annotations

import struct
import time

import httpx
import pytest

from app.config import Settings
from tests.conftest import sample
from tests.hostile.builders import (
    corrupt_codec_stream,
    deflate_bomb,
    element,
    identity,
    image,
    item,
    nested_sequences,
    part10,
    with_new_uid,
)

pytestmark = pytest.mark.anyio


def stored(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.storage_dir.iterdir() if p.suffix == ".dcm")


async def refused(client: httpx.AsyncClient, data: bytes, fragment: str = "") -> str:
    started = time.perf_counter()
    response = await client.post("/upload", files={"file": ("hostile.dcm", data)})
    assert response.status_code == 400, response.text
    assert time.perf_counter() - started < 10
    message: str = response.json()["error"]
    assert fragment in message
    return message


CT = sample("CT_small.dcm").read_bytes()
PIXEL_DATA_AT = CT.rfind(b"\xe0\x7f\x10\x00")


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"", "empty"),
        (b"\x00", "too short"),
        (b"\x89PNG\r\n\x1a\n" + bytes(64), "neither"),
        (b"GIF89a" + bytes(300), "neither"),
        (b"\x00" * 128 + b"DICM", "nothing after"),
        (CT[:150], "truncated"),  # inside the File Meta
        (CT[:1500], "truncated"),  # inside the data set
        (CT[: PIXEL_DATA_AT + 100], "truncated"),  # inside Pixel Data
        (part10(identity() + element(0x0010, 0x0010, b"\x01\x02", b"AB")), "invalid VR"),
        (part10(identity() + element(0x0010, 0x0010, b"PN", b"", length=0xFFF0)), "truncated"),
        (part10(identity() + element(0x0009, 0x1010, b"OB", b"", length=0xFFFFFFF0)), "truncated"),
        (part10(identity() + struct.pack("<HH2sHL", 0x0008, 0x1140, b"SQ", 0, 0xFFFFFFFF) + item(b"")), "truncated"),
        (part10(identity() + nested_sequences(10_000)), "nested"),
        (part10(identity(), preamble=b"MZ\x90\x00"), "preamble"),
        (part10(identity(), preamble=b"\x7fELF\x02\x01"), "preamble"),
    ],
    ids=[
        "empty",
        "1-byte",
        "png",
        "gif",
        "preamble-only",
        "cut-in-meta",
        "cut-in-dataset",
        "cut-in-pixels",
        "bad-vr",
        "huge-length",
        "huge-bulk-length",
        "unclosed-sequence",
        "nested-10000",
        "mz-polyglot",
        "elf-polyglot",
    ],
)
async def test_refused_and_nothing_kept(
    client: httpx.AsyncClient, settings: Settings, data: bytes, fragment: str
) -> None:
    await refused(client, data, fragment)
    assert stored(settings) == []


async def test_tiff_preamble_is_allowed(client: httpx.AsyncClient) -> None:
    """PS3.10 7.5 dual-personality files put a TIFF header in the preamble: legitimate."""
    response = await client.post("/upload", files={"file": ("t.dcm", part10(identity(), preamble=b"II*\x00"))})
    assert response.status_code == 201


@pytest.mark.slow
async def test_deflate_bomb(client: httpx.AsyncClient, settings: Settings) -> None:
    bomb = deflate_bomb(settings.max_inflated_bytes + (1 << 20))
    assert len(bomb) < 2 << 20
    await refused(client, bomb, "inflates")


@pytest.mark.parametrize(
    ("rows", "columns", "bits", "frames", "fragment"),
    [
        (65535, 65535, 16, None, "limit"),
        (512, 512, 16, 2**31 - 1, "limit"),
        (64, 64, 0, None, "incomplete"),
        (64, 64, 12, None, "not valid"),
        (64, 64, 1, None, "shorter"),
        (64, 64, 32, None, "shorter"),
        (64, 64, 64, None, "shorter"),
        (0, 64, 16, None, "incomplete"),
    ],
)
async def test_lying_image_headers_answer_422(
    client: httpx.AsyncClient, rows: int, columns: int, bits: int, frames: int | None, fragment: str
) -> None:
    response = await client.post("/upload", files={"file": ("lie.dcm", image(rows, columns, bits, frames))})
    assert response.status_code == 201, response.text
    name = response.json()["name"]
    started = time.perf_counter()
    response = await client.get(f"/dicomFile/{name}?png")
    assert response.status_code == 422, response.text
    assert fragment in response.json()["error"]
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_jpeg_dcmtk.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPEG-LL.dcm",
        "SC_rgb_rle.dcm",
    ],
)
async def test_corrupt_codec_streams_never_500(client: httpx.AsyncClient, name: str) -> None:
    for offset, length in ((0, 32), (40, 200), (200, 2000)):
        data = with_new_uid(corrupt_codec_stream(sample(name), offset, length))
        upload = await client.post("/upload", files={"file": (name, data)})
        assert upload.status_code == 201
        response = await client.get(f"/dicomFile/{upload.json()['name']}?png")
        assert response.status_code in (200, 415, 422), response.text
        if response.status_code != 200:
            assert response.json()["error"]
    # a damaged stream header cannot decode at all: a clear 422 naming the reason
    data = with_new_uid(corrupt_codec_stream(sample(name), 0, 64))
    upload = await client.post("/upload", files={"file": (name, data)})
    response = await client.get(f"/dicomFile/{upload.json()['name']}?png")
    assert response.status_code in (200, 422)


@pytest.mark.slow
async def test_zip_bomb_is_refused_without_inflating(client: httpx.AsyncClient, settings: Settings) -> None:
    """A member of 512 MiB of zeros, deflated to about half a megabyte: refused from the archive's own
    numbers (ratio far above LIGHTBOX_ZIP_MAX_RATIO) before anything is inflated to disk."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("bomb.dcm", "w", force_zip64=True) as member:
            zeros = bytes(1 << 20)
            for _ in range(512):
                member.write(zeros)
        archive.writestr("real.dcm", sample("CT_small.dcm").read_bytes())
    bomb = buffer.getvalue()
    assert len(bomb) < 2 << 20
    started = time.perf_counter()
    response = await client.post("/upload", files={"file": ("bomb.zip", bomb, "application/zip")})
    assert time.perf_counter() - started < 10
    # the whole archive is refused: one hostile member makes the rest of it untrustworthy too
    assert response.status_code == 400, response.text
    (entry,) = response.json()["files"]
    assert entry["file"] == "bomb.zip" and "bomb.dcm" in entry["error"] and "zip bomb" in entry["error"]
    assert stored(settings) == []
    assert not any((settings.storage_dir / ".staging").iterdir())
