"""pynetdicom's own storescu, findscu and getscu apps against a real ``lightbox`` of two workers.

With two workers exactly one binds the DICOM port; the other waits to take over (app.dimse.listener).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pydicom
import pytest

from tests.conftest import sample
from tests.e2e.server import RunningServer, free_port, run_server

AET = "PYNETDICOM"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, int]]:
    port = free_port()
    env = {
        "LIGHTBOX_WORKERS": "2",
        "LIGHTBOX_DIMSE_PORT": str(port),
        "LIGHTBOX_DIMSE_PEERS": f"{AET}@127.0.0.1:local",
        "LIGHTBOX_LOG_FORMAT": "json",
    }
    with run_server(tmp_path_factory.mktemp("dimse"), env=env) as running:
        yield running, port


def app(name: str, port: int, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pynetdicom", name, "127.0.0.1", str(port), "-aet", AET, "-aec", "LIGHTBOX"]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)


def wait_for(server: RunningServer, text: str, count: int, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while server.output().count(text) < count:
        assert time.monotonic() < deadline, server.output()
        time.sleep(0.1)
    return server.output()


def echo(port: int) -> subprocess.CompletedProcess[str]:
    return app("echoscu", port)


def test_one_worker_holds_the_port_and_another_takes_over(server: tuple[RunningServer, int]) -> None:
    running, port = server
    wait_for(running, "is held by another worker", 1)
    output = wait_for(running, "DICOM listener LIGHTBOX on", 1)
    assert output.count("DICOM listener LIGHTBOX on") == 1
    assert httpx.get(f"{running.url}/readyz").status_code == 200
    holder = int(re.findall(r"DICOM listener LIGHTBOX on \S+ \(worker pid (\d+)\)", output)[0])
    os.kill(holder, signal.SIGKILL)  # the other worker binds within RETRY_SECONDS
    output = wait_for(running, "DICOM listener LIGHTBOX on", 2)
    assert echo(port).returncode == 0


def test_store_find_and_get(server: tuple[RunningServer, int], tmp_path: Path) -> None:
    running, port = server
    path = sample("CT_small.dcm")
    sent = pydicom.dcmread(path)
    stored = app("storescu", port, str(path), "-v")
    assert stored.returncode == 0, stored.stderr
    assert "Received Store Response (Status: 0x0000 - Success)" in stored.stderr

    listed = httpx.get(f"{running.url}/dicomFile", params={"SOPInstanceUID": str(sent.SOPInstanceUID)}).json()
    assert listed["total"] == 1

    found = app(
        "findscu", port, "-S", "-v", "-k", "QueryRetrieveLevel=SERIES", "-k", "PatientName=COMPRESSED*",
        "-k", "SeriesInstanceUID=", "-k", "Modality=",
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert str(sent.SeriesInstanceUID) in found.stderr

    got = app(
        "getscu", port, "-S", "-od", str(tmp_path), "-k", "QueryRetrieveLevel=SERIES",
        "-k", f"SeriesInstanceUID={sent.SeriesInstanceUID}",
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    received = [pydicom.dcmread(p) for p in tmp_path.iterdir()]
    assert [str(ds.SOPInstanceUID) for ds in received] == [str(sent.SOPInstanceUID)]
    assert received[0].PixelData == sent.PixelData
