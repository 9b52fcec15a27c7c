"""Rebuild the index from the storage folder wholly (``lightbox reindex``, disaster recovery), repair
the crash window at every start-up (:func:`reconcile`), or prune rows whose file is missing
(:func:`prune_missing`, only on the operator's explicit word).

Each stored file is validated and indexed again exactly as at upload; its upload time comes
back from the file's modification time, which the upload stamped on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from anyio import to_thread

from app.auth.principals import LOCAL_ADMIN, Principal
from app.errors import InvalidRequest, LightboxError
from app.index.base import AddOutcome, NewInstance
from app.services.instances import InstanceService
from app.services.storage_guard import Guard, StorageGuard
from app.storage.local import LocalBlobStore
from app.storage.names import name_id

HASH_CHUNK = 1 << 20
log = logging.getLogger("lightbox.reindex")


@dataclass
class ReindexReport:
    indexed: int = 0
    bytes: int = 0
    duplicates: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


Progress = Callable[[int, int, ReindexReport], None]


def folder_of(service: InstanceService) -> LocalBlobStore:
    """The storage folder: rebuilding and pruning read file names back from it (an object key has none)."""
    if not isinstance(service.store, LocalBlobStore):
        raise InvalidRequest("this needs the storage folder: object keys do not carry the stored names")
    return service.store


def _entry_blocking(service: InstanceService, name: str, owner: str) -> NewInstance:
    path = folder_of(service).existing_path(name)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    described = service.describe_blocking(path)
    stat = path.stat()
    return NewInstance(
        name=name,
        owner=owner,
        size=stat.st_size,
        sha256=digest.hexdigest(),
        uploaded_at_us=stat.st_mtime_ns // 1000,
        attributes=described.attributes,
        header=described.header,
    )


async def reindex(
    service: InstanceService, progress: Progress | None = None, owner: Principal = LOCAL_ADMIN
) -> ReindexReport:
    """Forget every index row, then index every stored file again; files are never changed or removed."""
    names = await to_thread.run_sync(folder_of(service).names)
    await service.index.clear()
    report = ReindexReport()
    for number, name in enumerate(names, start=1):
        try:
            entry = await to_thread.run_sync(_entry_blocking, service, name, owner.name)
            result = await service.index.add(entry)
        except LightboxError as exc:
            report.failures.append((name, exc.message))
        else:
            if result.outcome is AddOutcome.ALREADY_STORED:
                report.duplicates.append(name)
            else:
                report.indexed += 1
                report.bytes += entry.size
        if progress is not None:
            progress(number, len(names), report)
    return report


@dataclass
class ReconcileReport:
    """What start-up found: files a crash left unindexed (now indexed), rows whose file is missing (kept)."""

    indexed: list[str] = field(default_factory=list)
    missing: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    problem: str | None = None


async def reconcile(service: InstanceService, guard: Guard, owner: Principal = LOCAL_ADMIN) -> ReconcileReport:
    """At start-up: judge the storage folder, and repair only the crash window of the store path.

    Writes go temp -> fsync -> link -> index commit, so a crash leaves at most a durable, validated
    file whose row was never committed: it is indexed now (nothing acknowledged is lost). Rows are
    never deleted here: a row whose file is missing is reported (log, metric, ``lightbox check``)
    and answers "missing from storage"; only ``lightbox reindex --prune-missing --yes`` removes it.
    When the folder looks wrong (empty, unmounted, foreign) nothing is indexed or written at all.
    Workers starting together take turns (a lock on the folder).

    With an object store, or an index shared by replicas (PostgreSQL), nothing is repaired here: a
    blob without a row may be another replica's upload between put and commit, and a row without a
    blob in this replica's view is not evidence of anything. The sweeper reconciles those, by age,
    through the database (issue 12).
    """
    report = ReconcileReport()
    if not isinstance(guard, StorageGuard):
        return report
    folder = await to_thread.run_sync(os.open, guard.store.root, os.O_RDONLY)  # the lock is on the folder
    try:
        await to_thread.run_sync(fcntl.flock, folder, fcntl.LOCK_EX)
        found = await guard.assess()
        report.problem = found.problem
        if found.problem is None and not service.index.read_only and not service.index.shared:
            for name in sorted(found.audit.unindexed):
                try:
                    entry = await to_thread.run_sync(_entry_blocking, service, name, owner.name)
                    await service.index.add(entry)
                except LightboxError as exc:
                    report.failures.append((name_id(name), exc.message))
                else:
                    report.indexed.append(name)
                    found.audit.unindexed.discard(name)
        report.missing = len(found.audit.missing)
    finally:
        await to_thread.run_sync(os.close, folder)  # closing releases the lock
    if report.problem is not None:
        log.error("storage looks wrong, nothing was changed: %s", report.problem)
    elif report.missing:
        log.warning(
            "%d indexed file(s) are missing from storage: kept in the index, answered 503; see `lightbox check`",
            report.missing,
        )
    if report.indexed or report.failures:
        log.warning(
            "%d file(s) of interrupted uploads indexed, %d could not be", len(report.indexed), len(report.failures)
        )
    return report


async def prune_missing(service: InstanceService, names: set[str], owner: Principal = LOCAL_ADMIN) -> list[str]:
    """Remove the rows of ``names`` whose file is still missing (the operator's explicit, logged action)."""
    removed: list[str] = []
    for name in sorted(names):
        if await to_thread.run_sync(folder_of(service).path_of(name).exists):
            continue  # the file came back since it was listed
        await service.index.remove(owner, name)
        removed.append(name)
    if removed:
        log.warning(
            "pruned %d index row(s) whose stored file was missing (lightbox reindex --prune-missing): %s",
            len(removed),
            ", ".join(name_id(name) for name in removed),
        )
    return removed
