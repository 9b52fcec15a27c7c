"""A codec stream that aborts a native decoder costs a worker process, never the service."""

from __future__ import annotations

import subprocess
import sys
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from tests.conftest import sample
from tests.e2e.server import run_server
from tests.hostile.builders import jpeg_that_aborts_gdcm

pytestmark = pytest.mark.slow


def test_the_stream_really_aborts_an_unprotected_process(tmp_path: Path) -> None:
    """Guards the next test: without the sandbox this input kills the process."""
    path = tmp_path / "abort.dcm"
    path.write_bytes(jpeg_that_aborts_gdcm())
    code = "from pydicom.pixels.utils import pixel_array; import sys; pixel_array(sys.argv[1], index=0)"
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, timeout=60)
    assert result.returncode < 0  # killed by a signal (SIGABRT), not a Python exception


def test_server_survives_and_answers_422(tmp_path: Path) -> None:
    with run_server(tmp_path) as server:
        hostile = httpx.post(server.url + "/upload", files={"file": ("x.dcm", jpeg_that_aborts_gdcm())}, timeout=30)
        assert hostile.status_code == 201
        intact = dcmread(sample("SC_rgb_jpeg_dcmtk.dcm"))
        intact.SOPInstanceUID = generate_uid()  # a different instance from the hostile copy
        buffer = BytesIO()
        intact.save_as(buffer)
        good = httpx.post(server.url + "/upload", files={"file": ("ok.dcm", buffer.getvalue())})
        assert good.status_code == 201
        for _ in range(2):  # twice: the replaced pool keeps working
            response = httpx.get(f"{server.url}/dicomFile/{hostile.json()['name']}?png", timeout=60)
            assert response.status_code == 422, response.text
            assert "crashed the decoder" in response.json()["error"]
            assert httpx.get(f"{server.url}/dicomFile/{good.json()['name']}?png", timeout=60).status_code == 200
        assert server.process.poll() is None
