"""Rebuild the index from the storage folder, wholly (``lightbox reindex``, disaster recovery) or
where the two disagree (:func:`reconcile`, at every start-up).

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
from app.errors import LightboxError
from app.index.base import AddOutcome, NewInstance
from app.services.instances import InstanceService

HASH_CHUNK = 1 << 20
log = logging.getLogger("lightbox.reindex")


@dataclass
class ReindexReport:
    indexed: int = 0
    bytes: int = 0
    duplicates: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


Progress = Callable[[int, int, ReindexReport], None]


def _entry_blocking(service: InstanceService, name: str, owner: str) -> NewInstance:
    path = service.store.existing_path(name)
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
    names = await to_thread.run_sync(service.store.names)
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
    """What start-up found: files a crash left unindexed, rows whose file is gone."""

    indexed: list[str] = field(default_factory=list)
    forgotten: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)


async def reconcile(service: InstanceService, owner: Principal = LOCAL_ADMIN) -> ReconcileReport:
    """Make index and folder agree after a crash, without touching any file.

    Writes go temp -> fsync -> link -> index commit, so a crash can leave one kind of disagreement
    per interrupted upload: a durable, validated file whose row was never committed. It is indexed
    now (nothing acknowledged is lost; nothing unacknowledged is half-written). A row whose file
    disappeared (deleted by hand) is forgotten. Workers starting together take turns (a file lock).
    """
    report = ReconcileReport()
    folder = await to_thread.run_sync(os.open, service.store.root, os.O_RDONLY)  # the lock is on the folder
    try:
        await to_thread.run_sync(fcntl.flock, folder, fcntl.LOCK_EX)
        on_disk = set(await to_thread.run_sync(service.store.names))
        in_index = await service.index.names()
        for name in sorted(on_disk - in_index):
            try:
                entry = await to_thread.run_sync(_entry_blocking, service, name, owner.name)
                await service.index.add(entry)
            except LightboxError as exc:
                report.failures.append((name, exc.message))
            else:
                report.indexed.append(name)
        for name in sorted(in_index - on_disk):
            try:
                await service.index.remove(owner, name)
            except LightboxError as exc:
                report.failures.append((name, exc.message))
            else:
                report.forgotten.append(name)
    finally:
        await to_thread.run_sync(os.close, folder)  # closing releases the lock
    if report.indexed or report.forgotten or report.failures:
        log.warning(
            "index and storage reconciled: %d file(s) indexed, %d row(s) without a file forgotten, %d failure(s)",
            len(report.indexed),
            len(report.forgotten),
            len(report.failures),
        )
    return report
