"""Store, look up and render instances: validate -> stage -> publish, all blocking work off the loop."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
from anyio import to_thread
from pydicom.dataset import Dataset

from app.config import Settings
from app.dicom import ingest
from app.dicom.attributes import Attribute, describe
from app.dicom.tags import parse_tag
from app.errors import InvalidDicom, UploadTooLarge
from app.services.cache import LruCache
from app.storage.local import LocalBlobStore, StagedFile
from app.storage.names import new_stored_name

WRITE_BATCH = 1 << 20  # bytes buffered before a write is handed to a worker thread


@dataclass(frozen=True)
class StoredFile:
    name: str
    size: int
    sop_instance_uid: str


class Upload:
    """One file being received: bytes are batched, written off the loop, then validated and published."""

    def __init__(self, service: InstanceService, original_name: str | None, staged: StagedFile) -> None:
        self._service = service
        self._staged = staged
        self._buffer = bytearray()
        self.original_name = original_name
        self.received = 0

    async def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.received > self._service.settings.max_upload_bytes:
            raise UploadTooLarge(
                f"the file is larger than the limit of {self._service.settings.max_upload_bytes} bytes"
            )
        self._buffer += data
        if len(self._buffer) >= WRITE_BATCH:
            await self._flush()

    async def _flush(self) -> None:
        chunk, self._buffer = bytes(self._buffer), bytearray()
        await to_thread.run_sync(self._staged.write, chunk)

    async def finish(self) -> StoredFile:
        """Make the bytes durable, check they are DICOM, publish under a new name."""
        await self._flush()
        return await to_thread.run_sync(self._service.publish_blocking, self._staged, self.original_name)

    async def abort(self) -> None:
        with anyio.CancelScope(shield=True):
            await to_thread.run_sync(self._staged.discard)


class InstanceService:
    """The use cases of the file API, independent of HTTP."""

    def __init__(self, settings: Settings, store: LocalBlobStore) -> None:
        self.settings = settings
        self.store = store
        self._headers: LruCache[str, Dataset] = LruCache(settings.header_cache_entries)
        self.header_cache = self._headers  # read-only view for metrics (hits/misses)

    # -- upload -------------------------------------------------------------------------
    async def begin_upload(self, original_name: str | None) -> Upload:
        staged = await to_thread.run_sync(self.store.stage)
        return Upload(self, original_name, staged)

    def publish_blocking(self, staged: StagedFile, original_name: str | None) -> StoredFile:
        try:
            staged.flush_to_disk()
            if staged.size == 0:
                raise InvalidDicom("the file is empty")
            facts = ingest.inspect(staged.path, self.settings.max_inflated_bytes)
            name = new_stored_name(original_name)
            self.store.publish(staged, name)
            return StoredFile(name, staged.size, facts.sop_instance_uid)
        except BaseException:
            staged.discard()
            raise

    # -- headers -------------------------------------------------------------------------
    def header_blocking(self, name: str) -> tuple[Path, Dataset]:
        """Path and parsed header (bulk values deferred) of a stored file; cached, files never change."""
        path = self.store.existing_path(name)
        header = self._headers.get(name)
        if header is None:
            header = ingest.read_header(path)
            self._headers.put(name, header)
        return path, header

    async def attribute(self, name: str, tag_text: str) -> Attribute:
        tag = parse_tag(tag_text)

        def lookup() -> Attribute:
            _, header = self.header_blocking(name)
            return describe(header, tag, self.settings.inline_binary_max_bytes)

        return await to_thread.run_sync(lookup)

    async def check_exists(self, name: str) -> None:
        await to_thread.run_sync(self.store.existing_path, name)
