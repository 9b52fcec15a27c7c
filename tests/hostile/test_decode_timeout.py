"""Decoder time bombs: a small, valid progressive JPEG that walks a 4096 x 4096 image once per scan.

Too many scans are refused from the stream alone; a stream under that limit that still decodes for
longer than ``LIGHTBOX_DECODE_TIMEOUT_SECONDS`` is stopped by the decode sandbox: the worker is
replaced, the answer is 422, and the next render works.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from pydicom.uid import JPEGBaseline8Bit

from app.config import Settings
from app.dicom.ingest import read_header
from app.dicom.pixels import check_before_decoding
from app.errors import NotRenderable
from app.services.renders import Encoding, RenderRequest, render_file
from app.services.sandbox import DecodeSandbox
from tests.conftest import sample
from tests.e2e.server import run_server
from tests.hostile.builders import encapsulated, progressive_scan_bomb

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
SIDE = 4096
BIG_SIDE = 8192  # ~4x the decode time of SIDE: far past a 1 s limit on any machine
ENCODING = Encoding(1 << 30, 1, 90)


def bomb(tmp_path: Path, bands: int, side: int = SIDE) -> Path:
    path = tmp_path / f"scans-{bands}-{side}.dcm"
    path.write_bytes(encapsulated(progressive_scan_bomb(side, side, bands), JPEGBaseline8Bit, side, side))
    return path


def test_thousands_of_scans_are_refused_from_the_stream_alone(tmp_path: Path) -> None:
    path = bomb(tmp_path, 63)  # 883 scans
    started = time.perf_counter()
    with pytest.raises(NotRenderable, match="883 scans"):
        check_before_decoding(path, read_header(path), 0, 1 << 30)
    assert time.perf_counter() - started < 2


async def test_a_slow_stream_is_stopped_and_the_worker_replaced(tmp_path: Path) -> None:
    path = bomb(tmp_path, 35)  # 491 scans: passes the scan limit, takes seconds to decode
    check_before_decoding(path, read_header(path), 0, 1 << 30)
    sandbox = DecodeSandbox(workers=1, timeout_seconds=1)
    try:
        await sandbox.warm("app.services.renders")
        started = time.perf_counter()
        with pytest.raises(NotRenderable, match="longer than 1 s"):
            await sandbox.run(render_file, path, None, RenderRequest(), ENCODING)
        assert time.perf_counter() - started < 5
        await sandbox.warm("app.services.renders")  # a fresh worker
        image = await sandbox.run(render_file, sample("SC_rgb_jpeg_dcmtk.dcm"), None, RenderRequest(), ENCODING)
        assert image.startswith(b"\x89PNG")
    finally:
        sandbox.close()


def test_over_http_the_answer_is_422_and_the_server_keeps_serving(tmp_path: Path) -> None:
    settings = {"LIGHTBOX_DECODE_TIMEOUT_SECONDS": "1"}
    with run_server(tmp_path, env=settings) as server:
        stored = httpx.post(
            server.url + "/upload", files={"file": ("b.dcm", bomb(tmp_path, 35, BIG_SIDE).read_bytes())}
        )
        assert stored.status_code == 201, stored.text
        started = time.perf_counter()
        response = httpx.get(f"{server.url}/dicomFile/{stored.json()['name']}?png", timeout=60)
        assert response.status_code == 422, response.text
        assert "longer than 1 s" in response.json()["error"]
        assert time.perf_counter() - started < 10
        plain = httpx.post(server.url + "/upload", files={"file": ("ct.dcm", sample("CT_small.dcm").read_bytes())})
        assert httpx.get(f"{server.url}/dicomFile/{plain.json()['name']}?png", timeout=60).status_code == 200
        assert server.process.poll() is None
    assert Settings.model_fields["decode_timeout_seconds"].default == 10
