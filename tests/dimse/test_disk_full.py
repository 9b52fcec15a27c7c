"""A full disk answers C-STORE with 0xA700 (PS3.4 B.2.3 Refused: Out of Resources) and keeps nothing of the file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pydicom
import pytest
from fastapi import FastAPI

from app.config import Settings
from tests.conftest import sample
from tests.dimse.test_listener import in_thread, running, store, tiny, with_auth
from tests.e2e.server import free_port
from tests.mounts import tmpfs_mount

pytestmark = pytest.mark.anyio


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    with tmpfs_mount(tmp_path / "tmpfs", "2m") as mount:
        yield mount


@pytest.fixture
def settings(tmpfs: Path) -> Settings:
    return with_auth(storage_dir=tmpfs / "storage", dimse_port=free_port(), dimse_peers="ALICE@127.0.0.1:alice")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    async with running(settings) as application:
        yield application


async def test_disk_full_is_out_of_resources_and_leaves_no_partial_file(app: FastAPI, settings: Settings) -> None:
    large = pydicom.dcmread(sample("MR2_UNCR.dcm"))  # 2 MB: more than the tmpfs has left
    small = tiny("FULL1")
    statuses = await in_thread(lambda: store("ALICE", settings, [large, small]))
    assert int(statuses[0].Status) == 0xA700
    assert "full" in str(statuses[0].ErrorComment)
    assert int(statuses[1].Status) == 0x0000  # the association went on; room for a small file is used
    assert not list(app.state.instances.store.staging.iterdir())
    stored = [pydicom.dcmread(path).SOPInstanceUID for path in settings.storage_dir.glob("*.dcm")]
    assert stored == [small.SOPInstanceUID]
