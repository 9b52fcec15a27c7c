"""Real file systems for fault tests: a small tmpfs that can fill up or be remounted read-only (needs root)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def tmpfs_mount(mount_point: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` (e.g. ``2m``) mounted at ``mount_point`` for the duration of the block."""
    mount_point.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def remount(mount_point: Path, mode: str) -> None:
    """``ro`` or ``rw``: a read-only mount stops even root, unlike file modes."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount_point)], check=True)
