"""Uploading and rendering a 1 GiB multi-frame file must not hold it in memory (peak RSS + < 256 MiB)."""

from __future__ import annotations

from collections.abc import Iterator
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.e2e.server import run_server
from tests.hostile.builders import element

pytestmark = pytest.mark.slow
ROWS = COLUMNS = 512
FRAMES = 2048  # 512 x 512 x 2 bytes x 2048 = 1 GiB


def write_big_multiframe(path: Path) -> int:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
    ds.SOPInstanceUID = generate_uid()
    ds.Rows, ds.Columns, ds.NumberOfFrames = ROWS, COLUMNS, FRAMES
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    header = BytesIO()
    ds.save_as(header, enforce_file_format=True)
    frame = (bytes(range(256)) * (ROWS * COLUMNS * 2 // 256))[: ROWS * COLUMNS * 2]
    with path.open("wb") as out:
        out.write(header.getvalue())
        out.write(element(0x7FE0, 0x0010, b"OW", b"", length=len(frame) * FRAMES))
        for _ in range(FRAMES):
            out.write(frame)
    return path.stat().st_size


def rss_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def chunks(path: Path, boundary: bytes) -> Iterator[bytes]:
    yield b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="big.dcm"\r\n\r\n'
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            yield block
    yield b"\r\n--" + boundary + b"--\r\n"


def test_one_gib_upload_and_render_stay_small(tmp_path: Path) -> None:
    source = tmp_path / "big.dcm"
    size = write_big_multiframe(source)
    assert size > 1 << 30
    with run_server(tmp_path, env={"LIGHTBOX_MAX_UPLOAD_BYTES": str(2 << 30)}) as server:
        httpx.get(server.url + "/healthz")
        baseline = rss_kib(server.process.pid, "VmRSS")
        boundary = b"lightbox-boundary"
        response = httpx.post(
            server.url + "/upload",
            content=chunks(source, boundary),
            headers={"content-type": "multipart/form-data; boundary=" + boundary.decode()},
            timeout=300,
        )
        assert response.status_code == 201, response.text
        name = response.json()["name"]
        assert (server.storage / name).stat().st_size == size
        tag = httpx.get(f"{server.url}/dicomFile/{name}", params={"tag": "PixelData"}, timeout=60).json()
        assert tag["data"]["header-attribute-value"] == f"[{ROWS * COLUMNS * 2 * FRAMES} bytes]"
        png = httpx.get(f"{server.url}/dicomFile/{name}?png&frame=2000", timeout=60)
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
        peak = rss_kib(server.process.pid, "VmHWM")
        print(f"peak RSS grew by {(peak - baseline) // 1024} MiB for a {size >> 20} MiB file")
        assert (peak - baseline) < 256 * 1024, f"peak RSS grew by {(peak - baseline) // 1024} MiB"
