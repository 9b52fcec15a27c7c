"""The storage write probe: a real write + fsync + delete, and no pile-up of threads behind a hung disk."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.readiness import CheckFailed, StorageWritable, run_checks

pytestmark = pytest.mark.anyio


async def test_the_probe_really_writes_and_cleans_up(tmp_path: Path) -> None:
    await StorageWritable(tmp_path)()
    assert list(tmp_path.iterdir()) == []
    missing = StorageWritable(tmp_path / "gone")
    with pytest.raises(CheckFailed, match="not writable: No such file or directory"):
        await missing()


class BlockedDisk(StorageWritable):
    """A disk that hangs (a dead NFS mount) cannot be made here without FUSE: the probe thread blocks instead."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder)
        self.release = threading.Event()
        self.started = 0

    def _probe(self) -> None:
        self._probing = True
        self.started += 1
        try:
            self.release.wait(10)
        finally:
            self._probing = False


async def test_a_hung_probe_times_out_and_later_checks_fail_at_once(tmp_path: Path) -> None:
    disk = BlockedDisk(tmp_path)
    try:
        assert await run_checks({"storage": disk}, timeout=0.2) == {"storage": "failed: no answer within 0.2 s"}
        again = await run_checks({"storage": disk}, timeout=0.2)
        assert again == {"storage": "failed: an earlier write probe is still blocked: the storage is hanging"}
        assert disk.started == 1  # no second thread stuck behind the first
    finally:
        disk.release.set()
