"""Staged uploads survive another worker's start-up sweep while they are being received."""

from __future__ import annotations

from pathlib import Path

from app.storage.local import LocalBlobStore


def test_a_restarting_worker_sweeps_only_abandoned_staged_files(tmp_path: Path) -> None:
    running = LocalBlobStore(tmp_path)
    running.prepare()
    live = running.stage()
    live.write(b"half an upload")
    abandoned = running.staging / "0123456789abcdef.part"  # a crashed worker's leftover: nobody holds it
    abandoned.write_bytes(b"stale")

    restarting = LocalBlobStore(tmp_path)  # as a worker (re)started beside the running one does
    assert restarting.prepare() == 1
    assert live.path.exists() and not abandoned.exists()

    live.flush_to_disk()  # still held while it is validated
    assert restarting.prepare() == 0 and live.path.exists()
    live.discard()
    assert list(running.staging.iterdir()) == []
