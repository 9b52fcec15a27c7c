"""Readiness: named checks that really try each dependency, each bounded by a timeout.

``app.state.readiness_checks`` maps a name to an async callable that returns when the dependency
works and raises when it does not. Whoever owns a dependency registers its check in the lifespan
with one line, for example ``app.state.readiness_checks["index"] = index.ping``; ``GET /readyz``
runs them all at once and answers 503 naming each failure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

import anyio
from anyio import to_thread

from app.errors import LightboxError

ReadinessCheck = Callable[[], Awaitable[None]]


class CheckFailed(Exception):
    """A readiness check's own, already readable, reason for failing."""


class StorageWritable:
    """Create, write, fsync and delete a probe file in the storage folder, in a worker thread.

    A hung disk (dead NFS mount) blocks the thread, not the event loop: the check times out and
    later checks fail at once while that probe is still stuck, rather than piling up threads.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._probing = False  # set by the probe's thread while it runs

    async def __call__(self) -> None:
        if self._probing:
            raise CheckFailed("an earlier write probe is still blocked: the storage is hanging")
        await to_thread.run_sync(self._probe, abandon_on_cancel=True)

    def _probe(self) -> None:
        self._probing = True
        try:
            path = self.folder / f"readyz-{uuid.uuid4().hex}.probe"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except OSError as exc:
                raise CheckFailed(f"storage folder is not writable: {exc.strerror}") from None
            try:
                os.write(fd, b"ready\n")
                os.fsync(fd)
            except OSError as exc:
                raise CheckFailed(f"storage write failed: {exc.strerror}") from None
            finally:
                os.close(fd)
                path.unlink(missing_ok=True)
        finally:
            self._probing = False


def all_of(*checks: ReadinessCheck) -> ReadinessCheck:
    """Several checks under one name, in order: the first failure is the reason given."""

    async def run() -> None:
        for check in checks:
            await check()

    return run


async def run_checks(checks: Mapping[str, ReadinessCheck], timeout: float) -> dict[str, str]:
    """Run every check concurrently; ``"ok"`` or a short reason for each."""
    results: dict[str, str] = {}

    async def run(name: str, check: ReadinessCheck) -> None:
        try:
            with anyio.fail_after(timeout):
                await check()
            results[name] = "ok"
        except TimeoutError:
            results[name] = f"failed: no answer within {timeout:g} s"
        except CheckFailed as exc:
            results[name] = f"failed: {exc}"
        except LightboxError as exc:
            results[name] = f"failed: {exc.message}"
        except Exception as exc:
            results[name] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"

    async with anyio.create_task_group() as group:
        for name, check in checks.items():
            group.start_soon(run, name, check)
    return dict(sorted(results.items()))
