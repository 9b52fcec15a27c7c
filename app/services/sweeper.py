"""The sweeper: blobs with no index row, older than a minimum age, are removed (ARCHITECTURE rule 5).

Writes go stage -> put -> index commit, and deletes go index row -> blob, so a crash leaves at most
a blob without a row: a replica killed between put and commit, or a delete whose blob removal did not
finish. Both are found the same way: list the store, compare with the index, remove what has no row
and is older than ``LIGHTBOX_SWEEP_MIN_AGE_SECONDS`` (an upload in flight has a young blob and no row
yet; the age keeps it). Any replica may sweep; the database decides which one does
(:class:`app.index.claims.JobClaim`), so two never sweep at once and no job lives on one node.

The store's listing holds stored blobs only (never staging files, markers or the blob cache). Logs
and metrics carry counts, never names (a stored name includes the uploader's file name). An index
with no row at all beside a store full of old blobs is a wrong ``LIGHTBOX_DATABASE_URL`` or a lost
database, not a store of orphans: that pass removes nothing (``lightbox reindex`` is the way back).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import anyio
from anyio import to_thread

from app.errors import FileNotFound, LightboxError, StorageLooksWrong
from app.index.claims import JobClaim
from app.index.sql import SqlInstanceIndex
from app.storage.base import BlobInfo, BlobStore, LocalFiles
from app.storage.names import uuid_of_key

log = logging.getLogger("lightbox.sweeper")
#: Blobs compared with the index per query (one listing page of S3).
PAGE = 1000
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


class Sweeper:
    """Removes orphaned blobs (keys by :meth:`BlobStore.key_for`, as the upload path made them) and this
    replica's local copies of them (``files``: the blob cache of an object store)."""

    def __init__(
        self,
        store: BlobStore,
        index: SqlInstanceIndex,
        files: LocalFiles | None = None,
        storage_check: Callable[[], Awaitable[None]] | None = None,
        on_removed: Callable[[int], None] | None = None,
        page_size: int = PAGE,
    ) -> None:
        self.store = store
        self.index = index
        self.files = files
        self.claim = JobClaim(index.engine, JOB, SWEEP_LOCK)
        self.storage_check = storage_check  # raises while the storage looks wrong: then nothing is swept
        self.on_removed = on_removed
        self.page_size = page_size

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
        listing = self.store.list_blobs("", older_than_us)
        examined = removed = removed_bytes = failed = 0
        # one listing page at a time, each compared with the index rows of its UUID range: a pass holds
        # neither the whole listing nor every name of the index, however large both grow
        while page := await to_thread.run_sync(_next_page, listing, self.page_size):
            if not examined and not await self.index.holds_instances():
                raise StorageLooksWrong(
                    "the index holds no instance but the store holds blobs older than the minimum age: is "
                    "LIGHTBOX_DATABASE_URL right? Nothing was swept"
                )
            examined += len(page)
            page_removed, page_bytes, page_failed = await self._sweep_page(page)
            removed, removed_bytes, failed = removed + page_removed, removed_bytes + page_bytes, failed + page_failed
        if self.on_removed is not None and removed:
            self.on_removed(removed)
        report = SweepReport(examined, removed, removed_bytes, failed)
        if removed or failed:
            log.warning("sweep: %s", report.summary())
        elif examined:
            log.info("sweep: %s", report.summary())
        return report

    async def _sweep_page(self, page: list[BlobInfo]) -> tuple[int, int, int]:
        """Remove the page's blobs that have no index row: how many, their bytes, how many failed."""
        # only keys of the server's shape: anything else under the prefix is not ours to judge
        ours = [blob for blob in page if uuid_of_key(blob.key) is not None]
        orphans = await self._without_row(ours)
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
            if self.files is not None:
                await to_thread.run_sync(self.files.forget, blob.key)
            removed += 1
            removed_bytes += blob.size
        return removed, removed_bytes, failed

    async def _without_row(self, blobs: list[BlobInfo]) -> list[BlobInfo]:
        """The blobs no index row names, asked by the range of their UUIDs (every stored name starts
        with its blob's UUID, and UUIDs are lowercase hex of one length, so the range holds them all)."""
        if not blobs:
            return []
        ids = sorted(str(uuid_of_key(blob.key)) for blob in blobs)
        known = set()
        for name in await self.index.names_between(ids[0], uuid_after(ids[-1])):
            try:
                known.add(self.store.key_for(name))
            except FileNotFound:
                continue  # not a name of the server's shape: it keys no blob
        return [blob for blob in blobs if blob.key not in known]

    async def run(self, interval_seconds: float, min_age_seconds: float) -> None:
        """Forever: wake every interval (jittered, so replicas do not wake together) and sweep if due.

        Failures (database or store away) are logged (never with names) and retried at the next wake;
        cancellation stops it.
        """
        while True:
            await anyio.sleep(interval_seconds * random.uniform(0.5, 1.0))
            try:
                await self.sweep(min_age_seconds, due_after_seconds=interval_seconds * 0.9)
            except LightboxError as exc:
                log.warning("sweep skipped: %s", exc.message)
            except Exception as exc:  # never let the loop die: the next wake tries again
                log.warning("sweep failed: %s", type(exc).__name__)


def _next_page(listing: Iterator[BlobInfo], size: int) -> list[BlobInfo]:
    """Up to ``size`` more blobs of a listing (blocking: run in a worker thread)."""
    return list(itertools.islice(listing, size))


def uuid_after(last_id: str) -> str | None:
    """The next UUID after ``last_id`` as text: every name starting with ``last_id`` sorts before it,
    in byte order and in PostgreSQL's language collations alike (hex digits against hex digits). None past the last."""
    following = uuid.UUID(last_id).int + 1
    return str(uuid.UUID(int=following)) if following < 1 << 128 else None
