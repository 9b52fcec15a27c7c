"""Is the storage folder the one this index belongs to? Decided at start-up, re-checked while serving.

A row whose file is missing is not evidence that the instance is gone: a volume that mounts late,
a wrong ``LIGHTBOX_STORAGE_DIR`` or a replica with its own view of storage all look like that. So
nothing here deletes a row; the guard tells apart:

* storage that looks **wrong** (the folder holds no stored file while the index holds rows; its
  marker file is absent although this index recorded one; the marker belongs to another index):
  ``/readyz`` answers 503 with the reason, uploads are refused, reads served from the index go on,
  and nothing is written into the folder (no new marker over a populated index);
* storage that is **right** but lacks some files: each such row answers
  :class:`app.errors.StoredFileMissing`, is counted by a metric and listed by ``lightbox check``.

The marker (``.lightbox-storage``, see :mod:`app.storage.local`) is written at the first start and
its id recorded in the index. An index from before markers gets both on its first start, but only
when the folder really holds its files (at least one of its stored names): an upgrade, not a guess.

An object store (S3) holds exactly one object per stored instance and nothing else, so it has no
marker: :class:`ObjectStoreGuard` only checks that the bucket answers, and comparing bucket and
index is the sweeper's job (by age, through the database), never a start-up's.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field

from anyio import to_thread

from app.errors import StorageLooksWrong, StorageUnavailable
from app.index.base import InstanceIndex
from app.storage.base import BlobStore
from app.storage.local import MARKER, LocalBlobStore
from app.storage.s3 import S3BlobStore

log = logging.getLogger("lightbox.storage")
STORAGE_ID = "storage_id"  # the index_state key
RECHECK_SECONDS = 1.0  # an "all well" verdict is trusted this long by uploads


@dataclass
class StorageAudit:
    """Index and folder compared: rows without a file, files without a row."""

    missing: set[str] = field(default_factory=set)
    unindexed: set[str] = field(default_factory=set)
    rows: int = 0
    files: int = 0


@dataclass
class Assessment:
    """What one look at the folder found; ``problem`` is None when it is this index's storage."""

    problem: str | None
    marker: str | None  # the id in the folder's marker file
    recorded: str | None  # the id the index recorded
    audit: StorageAudit

    @property
    def storage_id(self) -> str | None:
        return self.recorded or self.marker


def _judge(marker: str | None, recorded: str | None, audit: StorageAudit) -> str | None:
    """Why the folder does not look like this index's storage, or None. Pure: decided from facts."""
    if marker is not None and recorded is not None and marker != recorded:
        return "the storage folder belongs to another index (its marker differs from the one this index recorded)"
    if audit.rows and not audit.files:
        return f"the storage folder holds no stored file while the index holds {audit.rows}: is the volume mounted?"
    if recorded is not None and marker is None:
        return f"the storage marker file {MARKER} is missing: the folder is not the one this index was started with"
    if recorded is None and audit.rows and len(audit.missing) == audit.rows:
        return "none of the index's files are in the storage folder: it is not this index's storage"
    if recorded is None and not audit.rows and audit.files:
        return (
            f"the index is empty but the storage folder holds {audit.files} stored file(s): "
            "run `lightbox reindex` to rebuild the index from them, or point LIGHTBOX_DATABASE_URL at their index"
        )
    return None


class StorageGuard:
    """The storage verdict of one process: set at start-up, refreshed by ``/readyz`` and uploads."""

    def __init__(self, store: LocalBlobStore, index: InstanceIndex) -> None:
        self.store = store
        self.index = index
        self.storage_id: str | None = None  # the marker id this index belongs to, once known
        self.problem: str | None = None
        self.audit = StorageAudit()
        self._trusted_until = 0.0
        self._next_assessment = 0.0

    # -- start-up and re-assessment ------------------------------------------------------
    async def look(self) -> Assessment:
        """Compare folder, marker and index; changes nothing (``lightbox check`` uses this alone)."""
        names = await self.index.names()
        on_disk = set(await to_thread.run_sync(self.store.names))
        marker = await to_thread.run_sync(self.store.read_marker)
        recorded = await self.index.state(STORAGE_ID)
        audit = StorageAudit(missing=names - on_disk, unindexed=on_disk - names, rows=len(names), files=len(on_disk))
        problem = _judge(marker, recorded, audit)
        return Assessment(problem, marker, recorded, audit)

    async def assess(self, adopt: bool = True) -> Assessment:
        """Look, and when the folder is this index's storage, make sure both carry the same id.

        A first start (or an upgrade from before markers) writes the marker, then records its id in
        the index; in that order, so a crash between the two is completed by the next start.
        Nothing is written when the storage looks wrong, or when the folder or index is read-only.
        """
        found = await self.look()
        if found.problem is None and adopt:
            storage_id = found.marker
            if storage_id is None and not await to_thread.run_sync(self.store.read_only):
                try:
                    storage_id = await to_thread.run_sync(self.store.write_marker, uuid.uuid4().hex)
                except StorageUnavailable as exc:  # a failing disk: /readyz says so; the next start retries
                    log.warning("the storage marker could not be written: %s", exc.message)
            if storage_id is not None and found.recorded is None and not self.index.read_only:
                found.recorded = await self.index.record_state(STORAGE_ID, storage_id)
            found.marker = storage_id
        self._apply(found)
        return found

    def _apply(self, found: Assessment) -> None:
        self.problem = found.problem
        self.audit = found.audit
        if found.problem is None:
            self.storage_id = found.storage_id
            self._trusted_until = time.monotonic() + RECHECK_SECONDS

    # -- while serving -------------------------------------------------------------------
    async def check(self, throttle: bool = False) -> None:
        """Raise :class:`StorageLooksWrong` with the reason unless the folder is still this index's storage.

        While all is well this reads the marker only; once something looked wrong, the whole
        assessment runs again (at most once a second with ``throttle``: it reads every name), so a
        volume mounted back is served again without a restart.
        """
        if self.problem is None:
            if self.storage_id is None:  # read-only storage from before markers: nothing to compare
                return
            marker = await to_thread.run_sync(self.store.read_marker)
            if marker == self.storage_id:
                self._trusted_until = time.monotonic() + RECHECK_SECONDS
                return
            self.problem = _judge(marker, self.storage_id, StorageAudit())
        elif not throttle or time.monotonic() >= self._next_assessment:
            self._next_assessment = time.monotonic() + RECHECK_SECONDS
            await self.assess()
        if self.problem is not None:
            raise StorageLooksWrong(self.problem)

    async def check_for_upload(self) -> None:
        """:meth:`check`, trusting a recent "all well" so uploads do not each read the marker."""
        if self.problem is None and time.monotonic() < self._trusted_until:
            return
        try:
            await self.check(throttle=True)
        except StorageLooksWrong as exc:
            raise StorageLooksWrong(f"uploads are refused until the storage is fixed: {exc.message}") from None

    def note_missing(self, name: str) -> None:
        """A request found a row without its file: counted until the file is back or the row pruned."""
        self.audit.missing.add(name)

    def missing_count(self) -> int:
        """Rows whose file is missing, as last seen (the ``lightbox_storage_missing_files`` metric)."""
        return len(self.audit.missing)


class ObjectStoreGuard:
    """The guard of an object store: it answers, or uploads and ``/readyz`` say it does not (503)."""

    def __init__(self, store: S3BlobStore) -> None:
        self.store = store
        self.problem: str | None = None
        self.audit = StorageAudit()
        self._trusted_until = 0.0

    async def check(self, throttle: bool = False) -> None:
        """:class:`StorageUnavailable` unless the bucket answers now (:meth:`S3BlobStore.ping`)."""
        try:
            await to_thread.run_sync(self.store.ping, abandon_on_cancel=True)
        except StorageUnavailable as exc:
            self.problem = exc.message
            raise
        self.problem = None
        self._trusted_until = time.monotonic() + RECHECK_SECONDS

    async def check_for_upload(self) -> None:
        """:meth:`check`, trusting a recent "all well" (a failing put answers 503 anyway)."""
        if self.problem is None and time.monotonic() < self._trusted_until:
            return
        await self.check()

    def note_missing(self, name: str) -> None:
        self.audit.missing.add(name)

    def missing_count(self) -> int:
        return len(self.audit.missing)


Guard = StorageGuard | ObjectStoreGuard


def guard_for(store: BlobStore, index: InstanceIndex) -> Guard:
    """The folder's marker-and-names guard, or the object store's reachability guard."""
    if isinstance(store, LocalBlobStore):
        return StorageGuard(store, index)
    if isinstance(store, S3BlobStore):
        return ObjectStoreGuard(store)
    raise TypeError(f"no storage guard for {type(store).__name__}")
