"""Store, look up, list and delete instances: the only place that touches both blobs and index.

Store order (no orphan, no half file): stage -> fsync -> validate -> put (the folder: link + dir
fsync; S3: a conditional PUT with the SHA-256) -> index commit; if the commit fails the blob is
removed again. Reads by path go through :class:`app.storage.base.LocalFiles` (the folder itself,
or the read-through cache of an object store). Blocking work (disk, network, parsing, hashing) runs
in worker threads; the index is asyncio throughout.

Every read or deletion of a stored file writes one audit record here (architecture rule 9), with
its outcome, so no transport can forget it; uploads are recorded per file by
:class:`app.services.uploads.UploadSession`, which reports every file of a request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio import to_thread
from pydicom.dataset import Dataset
from pydicom.tag import BaseTag

from app.auth import policy
from app.auth.principals import LOCAL_ADMIN, Principal
from app.config import Settings
from app.dicom import ingest
from app.dicom.attributes import Attribute, describe
from app.dicom.header_json import Header, describe_json, header_json, public_metadata
from app.dicom.indexed import InstanceAttributes, index_attributes
from app.dicom.tags import parse_tag
from app.errors import (
    FileNotFound,
    InvalidDicom,
    InvalidRequest,
    StorageUnavailable,
    StoredFileMissing,
    UploadTooLarge,
)
from app.index.base import AddOutcome, FindMatch, FindQuery, InstanceIndex, ListPage, ListQuery, NewInstance
from app.services.archives import is_zip
from app.services.audit import Action, AuditService
from app.services.cache import LruCache
from app.services.storage_guard import Guard, guard_for
from app.storage.base import BlobStore, LocalFiles
from app.storage.local import LocalBlobStore, StagedFile
from app.storage.names import name_id, new_stored_name
from app.threads import run_blocking
from app.tracing import span

log = logging.getLogger("lightbox.instances")
AnswerKey = tuple[str, int]  # (stored name, tag); only answers for callers who see everything
CachedAnswer = tuple[float, Attribute, str]  # (trusted until, answer, Study Instance UID for the audit record)
STUDY_INSTANCE_UID = "0020000D"
WRITE_BATCH = 1 << 20  # bytes held before they are handed to a worker thread to write
#: chunks held before that write, whatever their size: a client sending tiny chunks would otherwise make
#: a megabyte cost tens (each chunk is an object of its own)
MAX_PENDING_PARTS = 256


@dataclass(frozen=True)
class StoredFile:
    """The outcome of storing one file: newly ``created``, or the identical file stored before."""

    name: str
    size: int
    sop_instance_uid: str
    created: bool = True
    #: What was non-conformant but accepted (non-conformant UIDs, mixed encodings, wrong lengths).
    warnings: tuple[str, ...] = ()
    study_instance_uid: str = ""


@dataclass(frozen=True)
class Description:
    """A file validated as DICOM, described for the index, with what was non-conformant about it."""

    attributes: InstanceAttributes
    header: Header
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prepared:
    """A staged file that is durable and valid, with everything the index needs."""

    staged: StagedFile
    original_name: str | None
    attributes: InstanceAttributes
    header: Header
    uploaded_at_us: int
    warnings: tuple[str, ...] = ()


class Upload:
    """One file being received: bytes are batched and written off the loop, then stored."""

    def __init__(self, service: InstanceService, original_name: str | None, staged: StagedFile) -> None:
        self._service = service
        self.staged = staged
        # the body's chunks as received, written by a worker thread in batches: never copied together
        # (joining them cost ~18 % of a big upload's GIL time)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.original_name = original_name
        self.received = 0

    async def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self._service.settings.max_upload_bytes:
            raise UploadTooLarge(
                f"the file is larger than the limit of {self._service.settings.max_upload_bytes} bytes"
            )
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= WRITE_BATCH or len(self._pending) >= MAX_PENDING_PARTS:
            await self.flush()

    def _take_pending(self) -> list[bytes]:
        parts, self._pending, self._pending_bytes = self._pending, [], 0
        return parts

    async def flush(self) -> None:
        parts = self._take_pending()
        if parts:
            await run_blocking(_write_parts, self.staged, parts)

    async def prepare(self) -> Prepared | None:
        """Everything after the last byte that needs no index, in ONE worker-thread call (each hop costs).

        Writes the buffered rest, then returns None for a ZIP archive (the caller unpacks it) or the
        file made durable and validated, ready for :meth:`InstanceService.commit`.
        """
        return await run_blocking(self._prepare_blocking, self._take_pending())

    def _prepare_blocking(self, parts: list[bytes]) -> Prepared | None:
        _write_parts(self.staged, parts)
        if is_zip(self.staged.path):
            return None
        return self._service.prepare_blocking(self.staged, self.original_name, _now_us())

    async def abort(self) -> None:
        with anyio.CancelScope(shield=True):
            await to_thread.run_sync(self.staged.discard)


def _write_parts(staged: StagedFile, parts: Sequence[bytes]) -> None:
    for part in parts:
        staged.write(part)
    staged.flush_buffer()


def _now_us() -> int:
    return time.time_ns() // 1000


def _study_of(header: Header) -> str:
    """Study Instance UID (0020,000D) from a DICOM JSON header (PS3.18 F.2), "" when absent."""
    values = header.get(STUDY_INSTANCE_UID, {}).get("Value") or [""]
    return str(values[0])


def _tag_detail(tag: BaseTag | str) -> dict[str, str]:
    """The element asked for, as (gggg,eeee) when it parses (a tag names no patient), else as typed."""
    if isinstance(tag, str):
        try:
            parsed = parse_tag(tag)
        except InvalidRequest:
            return {"tag": tag[:64]}
    else:
        parsed = tag
    return {"tag": f"({parsed.group:04X},{parsed.element:04X})"}


def _list_detail(query: ListQuery) -> dict[str, str | int | None]:
    """A list's query as the caller typed it (kept in the database for administrators, never logged)."""
    return {
        "PatientID": query.patient_id,
        "PatientName": query.patient_name,
        "StudyInstanceUID": query.study_instance_uid,
        "SeriesInstanceUID": query.series_instance_uid,
        "SOPInstanceUID": query.sop_instance_uid,
        "Modality": query.modality,
        "StudyDateFrom": query.study_date_from,
        "StudyDateTo": query.study_date_to,
        "limit": query.limit,
        "offset": query.offset,
    }


def _find_detail(query: FindQuery) -> dict[str, str | int | None]:
    """A C-FIND's level and the keys it matched on (kept in the database for administrators, never logged)."""
    keys = {
        "PatientID": query.patient_id,
        "PatientName": query.patient_name,
        "StudyInstanceUID": "\\".join(query.study_instance_uids),
        "StudyDateFrom": query.study_date_from,
        "StudyDateTo": query.study_date_to,
        "AccessionNumber": query.accession_number,
        "StudyDescription": query.study_description,
        "Modality": query.modality,
        "SeriesInstanceUID": "\\".join(query.series_instance_uids),
        "SOPInstanceUID": "\\".join(query.sop_instance_uids),
        "SOPClassUID": "\\".join(query.sop_class_uids),
    }
    detail: dict[str, str | int | None] = {"dimse": "C-FIND", "level": str(query.level)}
    detail.update((key, value) for key, value in keys.items() if value)
    return detail


class InstanceService:
    """The use cases of the file API, independent of HTTP."""

    def __init__(
        self,
        settings: Settings,
        store: BlobStore,
        index: InstanceIndex,
        audit: AuditService,
        files: LocalFiles | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        if files is None:  # a folder's files are local already; an object store needs its cache
            if not isinstance(store, LocalBlobStore):
                raise TypeError("an object store is read through a blob cache: pass files=")
            files = store
        self.files = files
        self.index = index
        self.audit = audit
        self._headers: LruCache[str, Dataset] = LruCache(settings.header_cache_entries)
        # (name, tag) -> (trusted until, answer, study); names are never reused and files never change. Only
        # callers who see every file (administrators) use it: what others may see changes with every
        # grant or share revoked, and the cache must never be the authority on access (rule 10).
        self.answer_cache: LruCache[AnswerKey, CachedAnswer] = LruCache(settings.answer_cache_entries)
        # A shared index (PostgreSQL) is written by other replicas: an answer trusted for a while here
        # could outlive a DELETE answered there, so every lookup asks the index (issue 12).
        self._answers_trusted = not index.shared and settings.answer_cache_seconds > 0
        # answers being fetched from the index now: when one expires under load, one request refreshes it
        self._refreshing: dict[AnswerKey, anyio.Event] = {}
        self.header_cache = self._headers  # read-only view for metrics (hits/misses)
        self.guard: Guard = guard_for(store, index)  # is the storage this index's? (start-up decides)

    # -- upload -------------------------------------------------------------------------
    async def begin_upload(self, original_name: str | None) -> Upload:
        """Stage a new file; refused (503) while the storage folder looks unmounted or wrong."""
        await self.guard.check_for_upload()
        staged = await run_blocking(self.store.stage)
        return Upload(self, original_name, staged)

    async def store_bytes(self, principal: Principal, parts: Sequence[bytes], original_name: str | None) -> StoredFile:
        """Store a file already in memory (a DIMSE C-STORE: file meta + data set) by the upload's path.

        The same policy check, guard, size limit, staging, validation, dedup, conflict and index
        commit as ``POST /upload``; nothing is left behind on failure. One ``upload`` audit record
        per file, stored or refused (rule 9), as :class:`app.services.uploads.UploadSession` writes.
        """
        detail: dict[str, str | bool] = {"dimse": "C-STORE"}
        with self.audit.on_failure(principal, Action.UPLOAD, detail=detail):
            policy.require_write(principal, "storing instances")
            size = sum(len(part) for part in parts)
            if size > self.settings.max_upload_bytes:
                raise UploadTooLarge(f"the file is larger than the limit of {self.settings.max_upload_bytes} bytes")
            await self.guard.check_for_upload()
            staged = await to_thread.run_sync(self.store.stage)
            try:
                await to_thread.run_sync(_write_parts, staged, parts)
            except BaseException:
                await self._discard_staged(staged)
                raise
            stored = await self.store_staged(principal, staged, original_name)
        detail["created"] = stored.created
        self.audit.record(
            principal, Action.UPLOAD, study_instance_uid=stored.study_instance_uid, name=stored.name, detail=detail
        )
        return stored

    def describe_blocking(self, path: Path) -> Description:
        """Validate a file as DICOM and describe it for the index: attributes and the header as DICOM JSON.

        The same at upload and when ``lightbox reindex`` or start-up reconciliation reads a stored file.
        """
        facts = ingest.inspect(path, self.settings.max_inflated_bytes)
        header = header_json(facts.header, self.settings.inline_binary_max_bytes)
        return Description(index_attributes(facts), header, facts.warnings)

    def prepare_blocking(self, staged: StagedFile, original_name: str | None, uploaded_at_us: int) -> Prepared:
        """fsync, validate, and build the index entry; the staged file is discarded on any failure."""
        try:
            staged.flush_to_disk(uploaded_at_us * 1000)
            if staged.size == 0:
                raise InvalidDicom("the file is empty")
            with span("upload.validate", size=staged.size):
                described = self.describe_blocking(staged.path)
            return Prepared(
                staged, original_name, described.attributes, described.header, uploaded_at_us, described.warnings
            )
        except BaseException:
            staged.discard()
            raise

    async def store_staged(self, principal: Principal, staged: StagedFile, original_name: str | None) -> StoredFile:
        prepared = await run_blocking(self.prepare_blocking, staged, original_name, _now_us())
        return await self.commit(principal, prepared)

    async def commit(self, principal: Principal, prepared: Prepared) -> StoredFile:
        """Publish a prepared file under a new name and index it; undo the publish if the index refuses.

        Duplicates and SOP Instance UID conflicts are decided by the index's unique constraints. On a
        local folder nothing is read first (the read was ~8 % of an upload's CPU; a link is cheap): a
        duplicate is published under its own fresh name and removed again; that name (a new UUID)
        never addresses the copy stored before, so the removal cannot touch it, and the answer names
        that earlier copy. On an object store (``store.remote``) a put is a transfer, and a resent
        study is common (a modality's C-STORE retries, a re-import): the index is asked first, and the
        constraints still decide the races that read cannot see.
        """
        staged, sop_uid = prepared.staged, prepared.attributes.sop_instance_uid
        if self.store.remote:
            try:
                existing = await self.index.find_existing(principal, staged.sha256, sop_uid)
            except BaseException:
                await self._discard_staged(staged)
                raise
            if existing is not None:
                await self._discard_staged(staged)
                return _already_stored(prepared, existing.name)
        name = new_stored_name(prepared.original_name)
        try:
            await run_blocking(self.store.put, staged, self.store.key_for(name))
        except BaseException:
            await self._discard_staged(staged)
            raise
        entry = NewInstance(
            name,
            principal.name,
            staged.size,
            staged.sha256,
            prepared.uploaded_at_us,
            prepared.attributes,
            prepared.header,
        )
        try:
            with span("index.commit"):
                result = await self.index.add(entry)
        except BaseException:
            await self._remove_blob(name)
            raise
        if result.outcome is AddOutcome.ALREADY_STORED and result.name != name:  # stored before, or concurrently
            await self._remove_blob(name)
            return _already_stored(prepared, result.name)
        study = prepared.attributes.study_instance_uid
        return StoredFile(name, staged.size, sop_uid, warnings=prepared.warnings, study_instance_uid=study)

    async def _remove_blob(self, name: str) -> None:
        """Undo a put, or finish a delete: the blob and its local copy go; a blob already gone is fine.

        A store that fails now leaves the blob for the sweeper (it has no index row): logged, not raised.
        """

        def remove() -> None:
            key = self.store.key_for(name)
            try:
                self.store.delete(key)
            except FileNotFound:
                pass
            except (StorageUnavailable, OSError):
                log.warning("the blob of %s could not be removed now: left for the sweeper", name_id(name))
            self.files.forget(key)

        with anyio.CancelScope(shield=True):
            await to_thread.run_sync(remove)

    @staticmethod
    async def _discard_staged(staged: StagedFile) -> None:
        with anyio.CancelScope(shield=True):
            await to_thread.run_sync(staged.discard)

    # -- headers -------------------------------------------------------------------------
    def stored_path_blocking(self, name: str) -> Path:
        """The file of an indexed name; :class:`StoredFileMissing` when the index has it but storage does not.

        Callers ask the index first, so a name reaching here has a row: a missing file is a storage
        fault (not mounted, deleted behind the service), never "no such instance".
        """
        try:
            return self.files.local_path(self.store.key_for(name))
        except FileNotFound:
            self.guard.note_missing(name)
            raise StoredFileMissing() from None

    async def stored_path(self, name: str) -> Path:
        """:meth:`stored_path_blocking` off the loop; a row deleted meanwhile is FileNotFound, not missing."""
        try:
            return await to_thread.run_sync(self.stored_path_blocking, name)
        except StoredFileMissing:
            await self.check_exists(name, LOCAL_ADMIN)
            raise

    async def stored_header(self, name: str) -> tuple[Path, Dataset]:
        """:meth:`header_blocking` off the loop; a row deleted meanwhile is FileNotFound, not missing."""
        try:
            return await to_thread.run_sync(self.header_blocking, name)
        except StoredFileMissing:
            await self.check_exists(name, LOCAL_ADMIN)
            raise

    def header_blocking(self, name: str) -> tuple[Path, Dataset]:
        """Path and parsed header (bulk values deferred) of an indexed file; cached, files never change."""
        path = self.stored_path_blocking(name)
        header = self._headers.get(name)
        if header is None:
            header = ingest.read_header(path)
            self._headers.put(name, header)
        return path, header

    def cached_attribute(self, principal: Principal, name: str, tag_text: str) -> Attribute | None:
        """The answer :meth:`attribute` would give, if it is cached and still trusted; else None.

        For the lean tag path (:mod:`app.api.fast_tags`): no I/O, no thread, nothing counted as a
        miss (the full path that follows a None counts it). Malformed tags are the full path's job,
        and so is an answer the audit trail could not record now. A hit is recorded like any lookup.
        """
        if not (principal.is_admin and self._answers_trusted):
            return None
        try:
            tag = parse_tag(tag_text)
        except InvalidRequest:
            return None
        key = (name, int(tag))
        cached = self.answer_cache.peek(key)
        if cached is None or cached[0] < time.monotonic() or not self.audit.has_room():
            return None
        self.answer_cache.get(key)  # counts the hit and refreshes the entry's age
        self.audit.record(principal, Action.TAG, study_instance_uid=cached[2], name=name, detail=_tag_detail(tag))
        return cached[1]

    async def attribute(self, principal: Principal, name: str, tag_text: str) -> Attribute:
        """One element, answered from the index's stored header; only bulk values read the file."""
        detail = _tag_detail(tag_text)
        with self.audit.on_failure(principal, Action.TAG, name=name, detail=detail):
            answer, study = await self._attribute(principal, name, tag_text)
        self.audit.record(principal, Action.TAG, study_instance_uid=study, name=name, detail=detail)
        return answer

    async def _attribute(self, principal: Principal, name: str, tag_text: str) -> tuple[Attribute, str]:
        tag = parse_tag(tag_text)
        if not (principal.is_admin and self._answers_trusted):  # visibility is the index's, on every request
            return await self._look_up(principal, name, tag, None)
        key = (name, int(tag))
        cached = self.answer_cache.get(key)
        if cached is not None and cached[0] >= time.monotonic():
            return cached[1], cached[2]
        refreshing = self._refreshing.get(key)
        if refreshing is not None:  # another request is asking the index for this answer: share it
            await refreshing.wait()
            cached = self.answer_cache.peek(key)
            if cached is not None and cached[0] >= time.monotonic():
                return cached[1], cached[2]
            return await self._look_up(principal, name, tag, key)  # it failed: fail (or succeed) on our own
        done = self._refreshing[key] = anyio.Event()
        try:
            return await self._look_up(principal, name, tag, key)
        finally:
            del self._refreshing[key]
            done.set()

    async def _look_up(
        self, principal: Principal, name: str, tag: BaseTag, key: AnswerKey | None
    ) -> tuple[Attribute, str]:
        header = await self.index.header(principal, name)

        def lookup() -> Attribute:
            answer = describe_json(header, tag, self.settings.inline_binary_max_bytes)
            if answer is None:  # the value lives only in the file
                _, dataset = self.header_blocking(name)
                answer = describe(dataset, tag, self.settings.inline_binary_max_bytes)
            return answer

        answer = await to_thread.run_sync(lookup)
        study = _study_of(header)
        if key is not None:
            self.answer_cache.put(key, (time.monotonic() + self.settings.answer_cache_seconds, answer, study))
        return answer, study

    async def metadata(self, principal: Principal, name: str) -> bytes:
        """The header as ``application/dicom+json``: a one-element array (PS3.18 F.2), bulk values left out."""
        with self.audit.on_failure(principal, Action.METADATA, name=name):
            header = await self.index.header(principal, name)
            body = await to_thread.run_sync(lambda: json.dumps([public_metadata(header)]).encode())
        self.audit.record(principal, Action.METADATA, study_instance_uid=_study_of(header), name=name)
        return body

    async def check_exists(self, name: str, principal: Principal) -> None:
        """FileNotFound unless ``principal`` may see a stored file of that name."""
        if not await self.index.exists(principal, name):
            raise FileNotFound(f"no stored file is named {name[:80]!r}")

    async def file_path(self, principal: Principal, name: str) -> Path:
        """The stored file's path, for a byte-identical download."""
        with self.audit.on_failure(principal, Action.DOWNLOAD, name=name):
            study = await self.index.study_uid(principal, name)
            path = await self.stored_path(name)
        self.audit.record(principal, Action.DOWNLOAD, study_instance_uid=study, name=name)
        return path

    # -- list / delete ---------------------------------------------------------------------
    async def find(self, principal: Principal, query: FindQuery) -> list[FindMatch]:
        """C-FIND: the matching patients, studies, series or instances ``principal`` may see; recorded
        as a query (PS3.15 A.5.3) with its level and keys, as :meth:`list` is."""
        detail = _find_detail(query)
        with self.audit.on_failure(principal, Action.LIST, detail=detail):
            matches = await self.index.find(principal, query)
        study = query.study_instance_uids[0] if len(query.study_instance_uids) == 1 else None
        self.audit.record(principal, Action.LIST, study_instance_uid=study, detail=detail)
        return matches

    async def list(self, principal: Principal, query: ListQuery) -> ListPage:
        """One page of the caller's files; recorded with the query (PS3.15 A.5.3 Query)."""
        detail = _list_detail(query)
        with self.audit.on_failure(principal, Action.LIST, detail=detail):
            page = await self.index.query(principal, query)
        self.audit.record(principal, Action.LIST, study_instance_uid=query.study_instance_uid, detail=detail)
        return page

    async def delete(self, principal: Principal, name: str) -> None:
        """Index row first, then the file: a crash in between leaves a file reindex can find, never a dangling row."""
        with self.audit.on_failure(principal, Action.DELETE, name=name):
            study = await self.index.study_uid(principal, name)
            await self.index.remove(principal, name)
            self.answer_cache.discard_where(lambda key: key[0] == name)
            self._headers.discard_where(lambda key: key == name)
            await self._remove_blob(name)
        self.audit.record(principal, Action.DELETE, study_instance_uid=study, name=name)


def _already_stored(prepared: Prepared, name: str) -> StoredFile:
    """The answer for a file whose identical bytes are stored as ``name`` (nothing new stored)."""
    attributes = prepared.attributes
    return StoredFile(
        name,
        prepared.staged.size,
        attributes.sop_instance_uid,
        created=False,
        warnings=prepared.warnings,
        study_instance_uid=attributes.study_instance_uid,
    )
