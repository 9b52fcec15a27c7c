"""The sweeper: blobs with no index row, older than a minimum age, are removed (ARCHITECTURE rule 5).

Writes go stage -> put -> index commit, and deletes go index row -> blob, so a crash leaves at most
a blob without a row: a replica killed between put and commit, or a delete whose blob removal did not
finish. Both are found the same way: list the store, compare with the index, remove what has no row
and is older than ``LIGHTBOX_SWEEP_MIN_AGE_SECONDS`` (an upload in flight has a young blob and no row
yet; the age keeps it). Any replica may sweep; the database decides which one does
(:class:`app.index.claims.JobClaim`), so two never sweep at once and no job lives on one node.

The store's listing holds stored blobs only (never staging files, markers or the blob cache). Logs
and metrics carry counts, never names (a stored name includes the uploader's file name).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import anyio
from anyio import to_thread

from app.errors import FileNotFound, LightboxError
from app.index.claims import JobClaim
from app.index.sql import SqlInstanceIndex
from app.storage.base import BlobInfo, BlobStore

log = logging.getLogger("lightbox.sweeper")
#: The PostgreSQL advisory lock number of the sweeper's claim ("LBSW" in ASCII).
SWEEP_LOCK = 0x4C425357
JOB = "sweep"


@dataclass(frozen=True)
class SweepReport:
    """One pass: blobs old enough to judge, how many had no row and were removed (and their bytes)."""

    examined: int = 0
    removed: int = 0
    removed_bytes: int = 0
    failed: int = 0

    def summary(self) -> str:
        return (
            f"examined {self.examined} blob(s) older than the minimum age; removed {self.removed} without an index "
            f"row ({self.removed_bytes} bytes); {self.failed} could not be removed"
        )


def same_key(name: str) -> str:
    """The folder store keys a blob by its stored name."""
    return name


class Sweeper:
    """Removes orphaned blobs; ``key_of`` maps a stored name to its blob key (as the upload path made it)."""

    def __init__(
        self,
        store: BlobStore,
        index: SqlInstanceIndex,
        key_of: Callable[[str], str] = same_key,
        storage_check: Callable[[], Awaitable[None]] | None = None,
        on_removed: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.index = index
        self.claim = JobClaim(index.engine, JOB, SWEEP_LOCK)
        self.key_of = key_of
        self.storage_check = storage_check  # raises while the storage looks wrong: then nothing is swept
        self.on_removed = on_removed

    async def sweep(self, min_age_seconds: float, due_after_seconds: float | None = None) -> SweepReport | None:
        """One pass if this replica gets the claim (and the job is due); None when it does not."""
        async with self.claim.hold(due_after_seconds) as held:
            if not held:
                return None
            return await self._pass(min_age_seconds)

    async def _pass(self, min_age_seconds: float) -> SweepReport:
        if self.storage_check is not None:
            await self.storage_check()  # an unmounted or foreign folder is never "all orphans"
        older_than_us = time.time_ns() // 1000 - int(min_age_seconds * 1_000_000)
        listed = await to_thread.run_sync(lambda: list(self.store.list_blobs("", older_than_us)))
        if not listed:
            return SweepReport()
        orphans = await self._without_row(listed)
        if orphans:  # asked again: a commit that landed while the first answer was read keeps its blob
            orphans = await self._without_row(orphans)
        removed = removed_bytes = failed = 0
        for blob in orphans:
            try:
                await to_thread.run_sync(self.store.delete, blob.key)
            except FileNotFound:
                continue  # removed meanwhile (the delete that left it finished after all)
            except LightboxError as exc:
                failed += 1
                log.warning("an orphaned blob could not be removed: %s", exc.message)
                continue
            removed += 1
            removed_bytes += blob.size
        if self.on_removed is not None and removed:
            self.on_removed(removed)
        report = SweepReport(len(listed), removed, removed_bytes, failed)
        if removed or failed:
            log.warning("sweep: %s", report.summary())
        else:
            log.info("sweep: %s", report.summary())
        return report

    async def _without_row(self, blobs: list[BlobInfo]) -> list[BlobInfo]:
        known = {self.key_of(name) for name in await self.index.names()}
        return [blob for blob in blobs if blob.key not in known]

    async def run(self, interval_seconds: float, min_age_seconds: float) -> None:
        """Forever: wake every interval (jittered, so replicas do not wake together) and sweep if due.

        Failures (database or store away) are logged and retried at the next wake; cancellation stops it.
        """
        while True:
            await anyio.sleep(interval_seconds * random.uniform(0.5, 1.0))
            try:
                await self.sweep(min_age_seconds, due_after_seconds=interval_seconds * 0.9)
            except LightboxError as exc:
                log.warning("sweep skipped: %s", exc.message)
