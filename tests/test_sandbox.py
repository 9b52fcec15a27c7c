"""The decode sandbox survives workers that abort, hang or raise, and keeps serving afterwards."""

from __future__ import annotations

import os
import time

import pytest

from app.errors import NotRenderable
from app.services.sandbox import DecodeSandbox

pytestmark = pytest.mark.anyio


def square(value: int) -> int:
    return value * value


def abort() -> None:
    os.abort()


def hang() -> None:
    time.sleep(60)


def fail() -> None:
    raise NotRenderable("bad stream")


async def test_crash_hang_and_errors_are_contained() -> None:
    replaced: list[str] = []
    sandbox = DecodeSandbox(workers=1, timeout_seconds=3, on_replace=replaced.append)
    try:
        assert await sandbox.run(square, 7) == 49
        with pytest.raises(NotRenderable, match="crashed"):
            await sandbox.run(abort)
        assert await sandbox.run(square, 8) == 64
        with pytest.raises(NotRenderable, match="longer than"):
            await sandbox.run(hang)
        assert await sandbox.run(square, 9) == 81
        with pytest.raises(NotRenderable, match="bad stream"):
            await sandbox.run(fail)
        assert replaced == ["crash", "timeout"]  # what lightbox_decode_sandbox_restarts_total counts
    finally:
        sandbox.close()
