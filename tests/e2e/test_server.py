"""A real uvicorn process on 127.0.0.1, driven over TCP like the curl examples in the README."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.server import run_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Started as ``python -m app`` (the other real-server tests use the ``lightbox`` command)."""
    with run_server(tmp_path_factory.mktemp("server"), command=(sys.executable, "-m", "app")) as running:
        yield running.url


def test_curl_examples(server: str, tmp_path: Path) -> None:
    """The three calls of the README."""
    path = sample("MR_small.dcm")
    with httpx.Client(base_url=server, timeout=30) as http:
        response = http.post("/upload", files={"file": ("IM000001", path.read_bytes())})
        assert response.status_code == 201
        name = response.json()["message"].removeprefix("File saved as: ")
        assert name.endswith("-IM000001.dcm")
        tag = http.get(f"/dicomFile/{name}", params={"tag": "(0028,0010)"}).json()["data"]
        assert tag == {
            "header-attribute-name": "Rows",
            "header-attribute-value": "[64]",
            "tag-values": "(0028,0010)",
            "vr": "US",
            "value": [64],
        }
        png = http.get(f"/dicomFile/{name}?png")
        assert png.status_code == 200 and png.content.startswith(b"\x89PNG")


def test_lookups_stay_fast_while_rendering(server: str) -> None:
    """Rendering runs in worker threads: tag lookups are answered while large renders are in flight."""
    import concurrent.futures

    with httpx.Client(base_url=server, timeout=60) as http:
        big = http.post("/upload", files={"file": ("big.dcm", sample("MR2_UNCR.dcm").read_bytes())}).json()["name"]
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            renders = [pool.submit(http.get, f"/dicomFile/{big}?png&window={w},400") for w in range(4)]
            started = time.perf_counter()
            assert http.get(f"/dicomFile/{big}", params={"tag": "Rows"}).status_code == 200
            lookup_seconds = time.perf_counter() - started
            assert all(f.result().status_code == 200 for f in renders)
        assert lookup_seconds < 2.0


def test_lightbox_import_folder_and_zip(server: str, tmp_path: Path) -> None:
    """``lightbox import`` against the running service: files, nested folders, a ZIP and a failure."""
    import zipfile

    from tests.api.test_index_calls import variant

    folder = tmp_path / "incoming"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.dcm").write_bytes(variant("CT_small.dcm"))
    (folder / "nested" / "b.dcm").write_bytes(variant("MR_small.dcm"))
    (folder / "notes.txt").write_text("not an image")
    with zipfile.ZipFile(tmp_path / "more.zip", "w") as archive:
        archive.writestr("c.dcm", variant("CT_small.dcm"))
    result = subprocess.run(
        [sys.executable, "-m", "app", "import", str(folder), str(tmp_path / "more.zip"), "--url", server],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr  # notes.txt failed
    assert "3 stored, 0 already stored, 1 failed" in result.stdout
    assert "notes.txt" in result.stdout
    assert "files 4/4" in result.stderr and "failures 1" in result.stderr
    listed = httpx.get(server + "/dicomFile", params={"limit": 1000}).json()
    assert {"a.dcm", "b.dcm", "c.dcm"} <= {row["name"].split("-", 5)[-1] for row in listed["data"]}
