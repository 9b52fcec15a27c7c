"""Start-up on storage that is not what it should be, with the real ``lightbox`` command and real mounts.

* a volume not mounted yet (an empty mount point), then mounted back while the service runs;
* a read-only mount of an archive: the service serves reads, says why it is not ready, refuses
  uploads; when the index would need a migration it exits 2 with one line (``lightbox``) or logs one
  line and exits (``uvicorn app.main:app``), never a traceback.

Mounts need root, as CI has; elsewhere these tests are skipped with the reason.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from app.index.migrate import alembic_config
from tests.conftest import sample
from tests.e2e.server import LIGHTBOX, free_port, run_server
from tests.mounts import remount, tmpfs_mount

pytestmark = [pytest.mark.slow, pytest.mark.skipif(os.geteuid() != 0, reason="needs root (mounts)")]
CT = sample("CT_small.dcm").read_bytes()
MR = sample("MR_small.dcm").read_bytes()
MISSING = {"error": "the stored file is missing from storage"}


@contextmanager
def bind_mount(source: Path, target: Path) -> Iterator[None]:
    target.mkdir(exist_ok=True)
    subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


def upload(url: str, data: bytes, name: str) -> httpx.Response:
    return httpx.post(url + "/upload", files={"file": (name, data)}, timeout=30)


def listing(url: str) -> list[dict[str, object]]:
    response = httpx.get(url + "/dicomFile", params={"limit": 1000}, timeout=30)
    assert response.status_code == 200, response.text
    rows: list[dict[str, object]] = response.json()["data"]
    return rows


def lightbox(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTBOX_", "PROMETHEUS_"))}
    return subprocess.run(
        [LIGHTBOX, *args], env={**inherited, **env}, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_volume_mounted_late_loses_nothing(tmp_path: Path) -> None:
    """The operator scenario of issue 19: upload two files, start on the empty mount point, mount back."""
    volume, storage = tmp_path / "volume", tmp_path / "storage"
    volume.mkdir()
    env = {"LIGHTBOX_DATABASE_URL": f"sqlite:///{tmp_path / 'index.sqlite3'}", "LIGHTBOX_STORAGE_DIR": str(storage)}
    with bind_mount(volume, storage), run_server(tmp_path, storage, env=env) as server:
        names = [upload(server.url, CT, "ct.dcm").json()["name"], upload(server.url, MR, "mr.dcm").json()["name"]]
        before = listing(server.url)
    assert list(storage.iterdir()) == []  # not mounted: an empty folder
    with run_server(tmp_path, storage, env=env, probe="/healthz") as server:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        assert "holds no stored file while the index holds 2" in ready.json()["checks"]["storage"]
        assert listing(server.url) == before  # nothing forgotten
        assert httpx.get(f"{server.url}/dicomFile/{names[0]}", params={"tag": "Modality"}).status_code == 200
        png = httpx.get(f"{server.url}/dicomFile/{names[1]}?png")
        assert (png.status_code, png.json()) == (503, MISSING)
        assert upload(server.url, CT, "again.dcm").status_code == 503
        check = lightbox("check", env=env)
        assert check.returncode == 1 and "storage looks wrong" in check.stdout
        assert not (storage / ".lightbox-storage").exists()
        with bind_mount(volume, storage):  # the volume arrives while the service runs
            assert httpx.get(server.url + "/readyz").status_code == 200
            assert httpx.get(f"{server.url}/dicomFile/{names[1]}?png").status_code == 200
            assert listing(server.url) == before
    with bind_mount(volume, storage), run_server(tmp_path, storage, env=env) as server:
        assert listing(server.url) == before  # same names, nothing indexed anew
        assert lightbox("check", env=env).returncode == 0


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs_mount(tmp_path / "tmpfs", "16m") as mount:
        yield mount
        remount(mount, "rw")


def test_read_only_storage_serves_reads(tmp_path: Path, tmpfs: Path) -> None:
    storage = tmpfs / "storage"
    with run_server(tmp_path, storage) as server:  # index inside the storage folder (the default)
        ct = upload(server.url, CT, "ct.dcm").json()["name"]
        upload(server.url, MR, "mr.dcm")
        before = listing(server.url)
    remount(tmpfs, "ro")
    with run_server(tmp_path, storage, probe="/healthz") as server:
        assert listing(server.url) == before
        assert httpx.get(f"{server.url}/dicomFile/{ct}", params={"tag": "PixelData"}).status_code == 200
        assert httpx.get(f"{server.url}/dicomFile/{ct}?png").status_code == 200
        download = httpx.get(f"{server.url}/dicomFile/{ct}?download")
        assert hashlib.sha256(download.content).digest() == hashlib.sha256(CT).digest()
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503 and "not writable" in ready.json()["checks"]["storage"]
        assert ready.json()["checks"]["index"] == "ok"
        refused = upload(server.url, sample("JPGExtended.dcm").read_bytes(), "new.dcm")
        assert refused.status_code == 503 and "not writable" in refused.json()["error"]
    assert sorted(p.name for p in storage.iterdir()) == sorted(
        [".lightbox-storage", ".staging", "index.sqlite3", *[str(row["name"]) for row in before]]
    )


def test_read_only_storage_needing_a_migration_exits_with_one_line(tmp_path: Path, tmpfs: Path) -> None:
    storage = tmpfs / "storage"
    with run_server(tmp_path, storage) as server:
        upload(server.url, CT, "ct.dcm")
    engine = create_engine(f"sqlite:///{storage / 'index.sqlite3'}")
    with engine.begin() as connection:  # an index from the release before
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
    engine.dispose()
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    remount(tmpfs, "ro")
    env = {"LIGHTBOX_STORAGE_DIR": str(storage), "LIGHTBOX_PORT": str(free_port())}
    result = lightbox(env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"lightbox: cannot start: the index needs a schema migration (0002 -> {head}) but its folder "
        "is read-only: start once with the storage writable"
    )
    assert "Traceback" not in result.stderr + result.stdout

    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LIGHTBOX_", "PROMETHEUS_"))}
    bare = subprocess.run(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--port", env["LIGHTBOX_PORT"]],
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = bare.stdout + bare.stderr
    assert bare.returncode != 0
    assert f"lightbox cannot start: the index needs a schema migration (0002 -> {head})" in output
    assert "Traceback" not in output


def test_read_only_storage_after_a_crash_reads_the_commits_left_in_the_wal(tmp_path: Path, tmpfs: Path) -> None:
    storage = tmpfs / "storage"
    with run_server(tmp_path, storage) as server:
        name = upload(server.url, CT, "ct.dcm").json()["name"]
        os.killpg(server.process.pid, signal.SIGKILL)  # no clean close: the row lives in index.sqlite3-wal
        server.process.wait(timeout=10)
    assert (storage / "index.sqlite3-wal").stat().st_size > 0
    remount(tmpfs, "ro")
    with run_server(tmp_path, storage, probe="/healthz") as server:
        assert [row["name"] for row in listing(server.url)] == [name]
    remount(tmpfs, "rw")
    (storage / "index.sqlite3-shm").unlink()  # without it SQLite cannot read the WAL read-only
    remount(tmpfs, "ro")
    result = lightbox(env={"LIGHTBOX_STORAGE_DIR": str(storage), "LIGHTBOX_PORT": str(free_port())})
    assert result.returncode == 2 and "was not closed cleanly" in result.stderr.strip().splitlines()[-1]
