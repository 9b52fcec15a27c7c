"""Group commit through the real service (issue 15): concurrent uploads with copies and a SOP Instance
UID conflict mixed in each get their own right answer, and every acknowledged file survives a crash.

``lightbox`` on 127.0.0.1 (SQLite + folder); the uploads are real HTTP requests at once (two writers
batching on one database: ``tests/index/test_group_commit.py``). The service is then killed with
SIGKILL (no shutdown, no WAL checkpoint) and started again on the same storage, which must still
list and answer every file it acknowledged.
"""

from __future__ import annotations

import os
import signal
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pydicom

from tests.conftest import sample
from tests.e2e.process import Server, lightbox
from tests.e2e.server import run_server

SOURCE = "CT_small.dcm"


def with_uid(data: bytes, old: bytes, new: str) -> bytes:
    """The file with its SOP Instance UID replaced by one of the same length (``new`` padded with digits)."""
    uid = (new + "1" * len(old))[: len(old)].encode()
    return data.replace(old, uid)


def restarted(tmp_path: Path, storage: Path) -> AbstractContextManager[Server]:
    """``lightbox`` (1 worker) started again on an existing storage folder."""
    workdir = tmp_path / "restart"
    workdir.mkdir()
    return run_server(workdir, storage=storage, env={"LIGHTBOX_LOG_FORMAT": "json"})


def test_concurrent_uploads_are_answered_right_and_survive_a_crash(tmp_path: Path) -> None:
    path = sample(SOURCE)
    data = path.read_bytes()
    old = str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID).encode()
    distinct = [with_uid(data, old, f"2.25.{n + 1}0") for n in range(16)]
    copied = distinct[3]
    # a different file (another patient name, same length) with the SOP Instance UID of a file stored before
    first = with_uid(data, old, "2.25.99")
    conflicting = first.replace(b"CompressedSamples^CT1", b"CompressedSamples^CT2")
    assert conflicting != first
    burst = [*distinct, *[copied] * 5, conflicting]
    storage = tmp_path / "storage"

    with lightbox(tmp_path, log_format="json") as server:
        stored_first = httpx.post(f"{server.url}/upload", files={"file": ("first.dcm", first)}, timeout=60)
        assert stored_first.status_code == 201, stored_first.text

        def upload(numbered: tuple[int, bytes]) -> httpx.Response:
            n, body = numbered
            return httpx.post(f"{server.url}/upload", files={"file": (f"f{n}.dcm", body)}, timeout=120)

        with ThreadPoolExecutor(max_workers=len(burst)) as pool:
            answers = list(pool.map(upload, enumerate(burst)))
        os.killpg(server.process.pid, signal.SIGKILL)  # a crash: nothing is flushed or checkpointed
        server.process.wait(timeout=30)

    statuses = [a.status_code for a in answers]
    for n in (n for n in range(16) if n != 3):
        assert statuses[n] == 201, answers[n].text
    copies = [answers[3], *answers[16:21]]
    assert sorted(a.status_code for a in copies) == [200] * 5 + [201]
    assert len({a.json()["name"] for a in copies}) == 1  # every copy names the one stored file
    assert statuses[21] == 409 and answers[21].json()["name"] == stored_first.json()["name"]

    acknowledged = {a.json()["name"] for a in answers if a.status_code in (200, 201)}
    acknowledged.add(stored_first.json()["name"])
    assert len(acknowledged) == 17
    with restarted(tmp_path, storage) as again:
        listed = httpx.get(f"{again.url}/dicomFile", params={"limit": 100}, timeout=30).json()
        assert {row["name"] for row in listed["data"]} == acknowledged and listed["total"] == 17
        for name in acknowledged:
            tag = httpx.get(f"{again.url}/dicomFile/{name}", params={"tag": "SOPInstanceUID"}, timeout=30)
            assert tag.status_code == 200, tag.text
