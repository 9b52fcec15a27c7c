"""Faults on a real server: kill -9 mid-upload, a full disk, read-only storage, failing fsync.

Fault injection uses strace (``-e inject=...``) and real tmpfs mounts, so these tests need
root, as CI has; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import sample
from tests.e2e.server import LIGHTBOX, run_server
from tests.mounts import remount, tmpfs_mount

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("strace") is None, reason="needs root and strace"),
]
CT = sample("CT_small.dcm").read_bytes()
MR = sample("MR_small.dcm").read_bytes()


def published(storage: Path) -> dict[str, str]:
    """Stored name -> SHA-256 of every published file."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in storage.iterdir() if p.suffix == ".dcm"}


def indexed(url: str) -> set[str]:
    """The names the index lists (through the API)."""
    response = httpx.get(url + "/dicomFile", params={"limit": 1000}, timeout=30)
    assert response.status_code == 200, response.text
    return {row["name"] for row in response.json()["data"]}


def staged(storage: Path) -> list[Path]:
    return list((storage / ".staging").iterdir())


def upload(url: str, data: bytes, name: str = "f.dcm") -> httpx.Response:
    return httpx.post(url + "/upload", files={"file": (name, data)}, timeout=30)


def initialised(tmp_path: Path, storage: Path) -> None:
    """One start and stop first: the storage marker's fsyncs are not counted among an upload's."""
    with run_server(tmp_path, storage):
        pass


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs_mount(tmp_path / "tmpfs", "2m") as mount:
        yield mount


def test_kill_9_at_fsync_keeps_acknowledged_uploads(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    initialised(tmp_path, storage)
    # fsync 1 and 2 belong to the first upload (file, then folder); the third kills the server
    wrapper = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:signal=KILL:when=3"]
    with run_server(tmp_path, storage, wrapper=wrapper, probe="/healthz") as server:
        first = upload(server.url, CT, "first.dcm")
        assert first.status_code == 201
        with pytest.raises(httpx.TransportError):
            upload(server.url, MR, "second.dcm")
        server.process.wait(timeout=10)
    acknowledged = first.json()["name"]
    assert published(storage) == {acknowledged: hashlib.sha256(CT).hexdigest()}
    with run_server(tmp_path, storage) as server:  # restart: the stray staged file is removed
        assert staged(storage) == []
        assert published(storage) == {acknowledged: hashlib.sha256(CT).hexdigest()}
        assert indexed(server.url) == set(published(storage))
        response = httpx.get(f"{server.url}/dicomFile/{acknowledged}", params={"tag": "SOPInstanceUID"})
        assert response.status_code == 200


def test_kill_9_between_publish_and_index_commit_is_recovered(tmp_path: Path) -> None:
    """Killed at the folder fsync: the file is durable and published, its index row never committed."""
    storage = tmp_path / "storage"
    initialised(tmp_path, storage)
    wrapper = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:signal=KILL:when=2"]
    with run_server(tmp_path, storage, wrapper=wrapper, probe="/healthz") as server:
        with pytest.raises(httpx.TransportError):
            upload(server.url, CT, "orphan.dcm")
        server.process.wait(timeout=10)
    (name,) = published(storage)  # linked under its name, never acknowledged, never indexed
    assert published(storage)[name] == hashlib.sha256(CT).hexdigest()
    with run_server(tmp_path, storage) as server:
        assert indexed(server.url) == {name}  # start-up reconciliation indexed it: folder and index agree
        response = httpx.get(f"{server.url}/dicomFile/{name}", params={"tag": "SOPInstanceUID"})
        assert response.status_code == 200
        assert upload(server.url, CT, "again.dcm").json()["message"] == f"File already saved as: {name}"


def test_a_file_removed_behind_the_service_is_reported_not_forgotten(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    with run_server(tmp_path, storage) as server:
        kept = upload(server.url, CT).json()["name"]
        lost = upload(server.url, MR).json()["name"]
    (storage / lost).unlink()
    with run_server(tmp_path, storage) as server:
        assert indexed(server.url) == {kept, lost}  # start-up deletes no row
        response = httpx.get(f"{server.url}/dicomFile/{lost}?png")
        assert (response.status_code, response.json()) == (503, {"error": "the stored file is missing from storage"})
        assert "lightbox_storage_missing_files 1.0" in httpx.get(server.url + "/metrics").text
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")},
        "LIGHTBOX_STORAGE_DIR": str(storage),
    }
    check = subprocess.run([LIGHTBOX, "check"], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode == 1 and "1 index row(s) without a file" in check.stdout and lost in check.stdout
    prune = [LIGHTBOX, "reindex", "--prune-missing", "--yes"]
    assert subprocess.run(prune, env=env, capture_output=True, timeout=60, check=False).returncode == 0
    with run_server(tmp_path, storage) as server:
        assert indexed(server.url) == {kept}  # exactly that row is gone
    assert subprocess.run([LIGHTBOX, "check"], env=env, capture_output=True, timeout=60, check=False).returncode == 0


def test_kill_9_mid_write_leaves_no_partial_file(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    body = CT * 200  # ~8 MB: many 1 MiB writes of the staged file
    with run_server(tmp_path, storage) as server:
        # attach to the running server: writes alternate between event-loop wake-ups (8 bytes) and
        # 1 MiB data writes of the staged file, so the ninth write from now is the third data write
        tracer = subprocess.Popen(
            [
                "strace",
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                "trace=write",
                "-e",
                "inject=write:signal=KILL:when=9",
                "-p",
                str(server.process.pid),
            ]
        )
        time.sleep(1.0)
        with pytest.raises(httpx.TransportError):
            upload(server.url, body, "big.dcm")
        server.process.wait(timeout=10)
        tracer.wait(timeout=10)
        assert len(staged(storage)) == 1 and staged(storage)[0].stat().st_size < len(body)  # killed mid-write
    assert published(storage) == {}
    with run_server(tmp_path, storage) as server:
        assert staged(storage) == []
        assert published(storage) == {}
        assert indexed(server.url) == set()


def test_disk_full_answers_507_and_reads_keep_working(tmp_path: Path, tmpfs: Path) -> None:
    storage = tmpfs / "storage"
    with run_server(tmp_path, storage) as server:
        first = upload(server.url, CT)
        assert first.status_code == 201
        response = upload(server.url, sample("MR2_UNCR.dcm").read_bytes())  # 2 MB > what is left
        assert response.status_code == 507, response.text
        assert "full" in response.json()["error"]
        assert staged(storage) == []
        assert list(published(storage)) == [first.json()["name"]]
        lookup = httpx.get(f"{server.url}/dicomFile/{first.json()['name']}", params={"tag": "Rows"})
        assert lookup.status_code == 200
        assert upload(server.url, MR).status_code == 201  # room for a small one is still used


def test_read_only_storage_answers_503_and_reads_keep_working(tmp_path: Path, tmpfs: Path) -> None:
    storage = tmpfs / "storage"
    # the index lives elsewhere: an open SQLite database would keep the mount from turning read-only
    database = f"sqlite:///{tmp_path / 'index.sqlite3'}"
    with run_server(tmp_path, storage, env={"LIGHTBOX_DATABASE_URL": database}) as server:
        first = upload(server.url, CT)
        assert first.status_code == 201
        remount(tmpfs, "ro")
        response = upload(server.url, MR)
        assert response.status_code == 503, response.text
        assert "not writable" in response.json()["error"]
        lookup = httpx.get(f"{server.url}/dicomFile/{first.json()['name']}", params={"tag": "Rows"})
        assert lookup.status_code == 200
        assert httpx.get(f"{server.url}/dicomFile/{first.json()['name']}?png").status_code == 200
    remount(tmpfs, "rw")
    assert list(published(storage)) == [first.json()["name"]]


def test_fsync_failure_acknowledges_nothing(tmp_path: Path) -> None:
    storage = tmp_path / "storage"
    wrapper = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:error=EIO"]
    with run_server(tmp_path, storage, wrapper=wrapper, probe="/healthz") as server:
        response = upload(server.url, CT)
        assert response.status_code == 503, response.text
        assert "EIO" in response.json()["error"]
        assert published(storage) == {}
        assert staged(storage) == []
