"""The ZIP of a study as the service streams it: bounded chunks, ZIP64 that other readers take,
server-made member names, and an instance deleted meanwhile left out."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydicom import dcmread
from pydicom.uid import generate_uid

from app.auth.principals import LOCAL_ADMIN
from app.index.base import Located
from app.services import study_archive
from app.services.study_archive import CHUNK, StudyArchiveService, member_names, member_part
from tests.conftest import sample, upload

pytestmark = pytest.mark.anyio

CT = dcmread(sample("CT_small.dcm"), stop_before_pixels=True)


def big_instance(tmp_path: Path, size: int) -> Path:
    """A CT instance of the CT study carrying ``size`` incompressible bytes in a private element."""
    ds = dcmread(sample("CT_small.dcm"))
    ds.SOPInstanceUID = generate_uid()
    block = ds.private_block(0x0011, "LIGHTBOX TEST", create=True)
    block.add_new(0x01, "OB", os.urandom(size))
    path = tmp_path / "big.dcm"
    ds.save_as(path)
    return path


async def collect(archives: StudyArchiveService, study: str) -> list[bytes]:
    archive = await archives.archive(LOCAL_ADMIN, study)
    return [chunk async for chunk in archive.chunks]


async def test_chunks_stay_small_whatever_the_file_size(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    big = big_instance(tmp_path, 5 * CHUNK)
    await upload(client, big)
    chunks = await collect(app.state.archives, CT.StudyInstanceUID)
    assert len(chunks) >= 5 and all(chunks)
    assert max(map(len, chunks)) <= CHUNK + CHUNK // 64  # one chunk of the file (deflate adds <1%) at a time
    with zipfile.ZipFile(io.BytesIO(b"".join(chunks))) as archive:
        (info,) = archive.infolist()
        assert archive.read(info) == big.read_bytes()
        assert info.date_time[0] >= 2024  # the time it was stored, not 1980


async def test_zip64_members_read_back_with_python_and_info_zip(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Members past 4 GiB get ZIP64 headers; the threshold is lowered so small files take that path."""
    await upload(client, sample("CT_small.dcm"))
    await upload(client, big_instance(tmp_path, CHUNK + 1))
    monkeypatch.setattr(study_archive, "ZIP64_FROM", 0)
    data = b"".join(await collect(app.state.archives, CT.StudyInstanceUID))
    assert data.count(b"\x01\x00\x10\x00") >= 2  # a ZIP64 extra field (id 1, 16 bytes) in each local header
    path = tmp_path / "study.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as archive:
        assert archive.testzip() is None
        assert (
            sorted(len(archive.read(info)) for info in archive.infolist())[0] == sample("CT_small.dcm").stat().st_size
        )
    unzip = shutil.which("unzip")
    if unzip is None:
        if os.environ.get("CI"):
            pytest.fail("unzip (Debian package unzip) is not installed")
        pytest.skip("unzip is not installed")
    checked = subprocess.run([unzip, "-t", str(path)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "No errors detected" in checked.stdout


def is_open(path: Path) -> bool:
    """Whether this process holds ``path`` open (Linux /proc)."""
    return any(fd.readlink() == path for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink())


async def test_a_client_leaving_mid_stream_leaves_no_file_open(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    stored = app.state.instances.store.existing_path(await upload(client, big_instance(tmp_path, 3 * CHUNK)))
    archive = await app.state.archives.archive(LOCAL_ADMIN, CT.StudyInstanceUID)
    chunks = archive.chunks
    assert await anext(chunks)
    assert is_open(stored)  # the member is being copied
    await chunks.aclose()
    assert not is_open(stored)


async def test_an_instance_deleted_while_streaming_is_left_out(
    app: FastAPI, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    await upload(client, sample("CT_small.dcm"))
    doomed = await upload(client, big_instance(tmp_path, 16))
    archive = await app.state.archives.archive(LOCAL_ADMIN, CT.StudyInstanceUID)
    await app.state.instances.delete(LOCAL_ADMIN, doomed)
    data = b"".join([chunk async for chunk in archive.chunks])
    with zipfile.ZipFile(io.BytesIO(data)) as zipped:
        assert [zipped.read(name) for name in zipped.namelist()] == [sample("CT_small.dcm").read_bytes()]


def located(series: str, sop: str) -> Located:
    return Located("name", "1.2", series, sop, "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.1.2.1", None)


def test_member_names_are_made_from_uids_and_unique() -> None:
    found = [located("1.2.3", "4.5"), located("1.2.3", "4.5"), located("../x", "a b/c"), located("..", "é")]
    assert member_names(found) == ["1.2.3/4.5.dcm", "1.2.3/4.5-2.dcm", ".._x/a_b_c.dcm", "_../_.dcm"]
    assert member_part("1" * 300) == "1" * 128
