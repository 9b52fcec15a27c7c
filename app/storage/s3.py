"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph): :class:`app.storage.base.BlobStore`.

The client is obstore (Rust's ``object_store``; its blocking calls release the GIL, so the worker
threads run in parallel): measured against boto3 in benchmarks/s3_clients.py. One store per process,
shared by the worker threads.

Uploads are staged on local disk as for the folder (validated there), then put never overwriting:

* below ``multipart_bytes`` (8 MiB, one part's size: obstore holds a conditional put's body in
  memory, so only files no larger than a part go that way) the staged file is read once, its
  SHA-256 compared with the validated one, and exactly those bytes put with
  ``If-None-Match: *`` and their SHA-256 as the object's checksum (the store checks the transport);
* from ``multipart_bytes`` on, a multipart upload in parts of ``part_bytes`` read from disk as they
  go up (a few parts in memory, ``PART_CONCURRENCY`` in flight). obstore's multipart upload cannot
  be conditional, so a HEAD refuses an existing key first; keys are fresh server-made UUIDs, so a
  key that appears between the HEAD and the completion would take a UUID collision. The
  parts are hashed as they are read; if the whole file's SHA-256 differs from the validated one the
  part iterator raises before the last part, obstore aborts the upload, and no object appears.

Reads are ranged GETs behind a buffered, seekable reader: reading one frame of a large file fetches
that range only; a whole object is fetched with one streamed GET into a local file (the read-through
cache, :mod:`app.storage.blob_cache`). Errors name the failure's class, never a key (keys name
stored files).

Keys are ``<uuid>.dcm`` (:func:`app.storage.names.object_key`): the client's file name, which may
carry a patient's name, never reaches the store.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import obstore
from obstore.exceptions import BaseError
from obstore.store import S3Store

from app.config import S3Location
from app.errors import FileNotFound, StorageUnavailable
from app.storage.base import BlobInfo, Staged
from app.storage.local import StagedFile, clear_staging
from app.storage.names import object_key

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig, S3Config

log = logging.getLogger("lightbox.storage")

READ_BUFFER = 1 << 20  # one ranged GET fetches at least this much
MULTIPART_BYTES = 8 << 20  # files from this size go up in parts (smaller ones are held in memory once)
PART_BYTES = 8 << 20  # S3 parts are 5 MiB at least (but the last)
PART_CONCURRENCY = 2  # parts of one upload in flight at once
FETCH_CHUNK = 1 << 20
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,250}$")
_PING = ".readyz/"  # a prefix no key has (keys start with a letter or digit)

#: what a call to the store raises when it fails (obstore's errors, I/O and timeouts as OSError)
_FAILURES = (BaseError, OSError, ValueError, RuntimeError)


def _unavailable(exc: BaseException) -> StorageUnavailable:
    """The store's failure, named by its class only to the caller; the operator's log gets the store's own
    first line too (keys are server-made UUIDs, no patient data; requests are signed in headers, so no
    credential is in a URL)."""
    log.warning("object store call failed: %s", str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__)
    return StorageUnavailable(f"the object store failed ({type(exc).__name__})")


def _gone() -> FileNotFound:
    return FileNotFound("the stored file is no longer in the object store")


class _Changed(Exception):
    """The staged file's bytes are not the validated ones (raised inside obstore's part iterator)."""


class _RangedObject(io.RawIOBase):
    """A seekable raw reader of one object: each read is a ranged GET (``Range: bytes=a-b``)."""

    def __init__(self, store: S3Store, path: str, size: int) -> None:
        super().__init__()
        self._store, self._path, self._size = store, path, size
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        wanted = min(len(buffer), self._size - self._position)
        if wanted <= 0:
            return 0
        try:
            data = memoryview(obstore.get_range(self._store, self._path, start=self._position, length=wanted))
        except FileNotFoundError:
            raise _gone() from None
        except _FAILURES as exc:
            raise _unavailable(exc) from None
        memoryview(buffer)[: len(data)] = data
        self._position += len(data)
        return len(data)


class S3BlobStore:
    """Objects ``<prefix><key>`` in one bucket; keys are server-made (no patient data, no ``/``)."""

    remote = True  # a put is a transfer: the upload path looks for an identical file first

    def __init__(
        self,
        store: S3Store,
        prefix: str,
        staging: Path,
        multipart_bytes: int = MULTIPART_BYTES,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.store = store
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.staging = staging
        self.multipart_bytes, self.part_bytes = multipart_bytes, part_bytes

    @classmethod
    def connect(
        cls,
        where: S3Location,
        endpoint_url: str | None,
        staging: Path,
        credentials: Mapping[str, str] | None = None,
        **sizes: int,
    ) -> S3BlobStore:
        """The process's one store. Credentials and region come from the standard AWS environment
        (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` or
        ``AWS_DEFAULT_REGION``, default ``us-east-1``; or web identity, container or instance
        credentials) unless ``credentials`` (``access_key_id``, ``secret_access_key``) are given.

        A short connect timeout, a bounded request time and two retries: a store that is down
        answers 503 within seconds rather than holding requests; connections are made again when
        it returns. A custom endpoint is addressed path-style; plain ``http://`` is allowed for it.
        """
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        config: S3Config = {
            "region": region,
            "conditional_put": "etag",  # mode="create" sends If-None-Match: *
            "checksum_algorithm": "SHA256",  # each body's SHA-256 sent along: the store checks the transport
        }
        if endpoint_url:
            config["endpoint"] = endpoint_url
            config["virtual_hosted_style_request"] = False
        if credentials:
            config["access_key_id"] = credentials["access_key_id"]
            config["secret_access_key"] = credentials["secret_access_key"]
        client: ClientConfig = {
            "allow_http": bool(endpoint_url and endpoint_url.startswith("http://")),
            "connect_timeout": timedelta(seconds=3),
            "timeout": timedelta(seconds=30),
        }
        retry: RetryConfig = {"max_retries": 2, "retry_timeout": timedelta(seconds=10)}
        store = S3Store(where.bucket, config=config, client_options=client, retry_config=retry)
        return cls(store, where.prefix, staging, **sizes)

    def prepare(self) -> int:
        """Create the staging folder and remove what a crash left in it; return how many."""
        return clear_staging(self.staging)

    def key_for(self, name: str) -> str:
        """:meth:`BlobStore.key_for`: ``<uuid>.dcm`` (no patient data in the bucket)."""
        return object_key(name)

    def ping(self) -> None:
        """The bucket answers a listing (readiness): :class:`StorageUnavailable` otherwise.

        One page of a prefix no key has: fails when the store is down or the bucket is missing.
        """
        try:
            obstore.list_with_delimiter(self.store, prefix=self.prefix + _PING)
        except _FAILURES as exc:
            raise _unavailable(exc) from None

    def _object(self, key: str) -> str:
        if not _KEY.match(key):
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        return self.prefix + key

    def stage(self) -> StagedFile:
        self.staging.mkdir(parents=True, exist_ok=True)
        return StagedFile(self.staging / f"{os.getpid()}-{uuid.uuid4().hex}.part")

    def put(self, staged: Staged, key: str) -> None:
        """Put the staged file's validated bytes, refused if the key exists or the bytes changed."""
        if not isinstance(staged, StagedFile):
            raise TypeError("the object store publishes only files staged on local disk")
        target = self._object(key)
        try:
            if staged.size >= self.multipart_bytes:
                self._put_parts(staged, target)
            else:
                data = staged.path.read_bytes()  # below multipart_bytes: bounded
                if hashlib.sha256(data).hexdigest() != staged.sha256:
                    raise _Changed
                obstore.put(self.store, target, data, mode="create", use_multipart=False)
        except _Changed:
            raise StorageUnavailable("the staged file changed on disk after it was validated") from None
        except _FAILURES as exc:
            raise _unavailable(exc) from None
        staged.discard()

    def _put_parts(self, staged: StagedFile, target: str) -> None:
        """A multipart upload read from disk part by part; aborted by obstore when the parts fail."""
        if self._size_at(target) is not None:  # obstore's multipart upload cannot be conditional
            raise StorageUnavailable("the object store already holds this key")
        changed = False

        def parts() -> Iterator[bytes]:
            nonlocal changed
            whole = hashlib.sha256()
            with staged.path.open("rb") as body:
                data = body.read(self.part_bytes)
                while data:
                    whole.update(data)
                    following = body.read(self.part_bytes)
                    if not following and whole.hexdigest() != staged.sha256:
                        changed = True  # before the last part: obstore aborts, the upload never completes
                        raise _Changed
                    yield data
                    data = following

        try:
            obstore.put(
                self.store,
                target,
                parts(),
                use_multipart=True,
                chunk_size=self.part_bytes,
                max_concurrency=PART_CONCURRENCY,
            )
        except Exception:
            if changed:
                raise _Changed from None
            raise

    def fetch_to(self, key: str, target: Path) -> int:
        """Stream the whole object into ``target`` (one GET, never whole in memory); its size.

        FileNotFound when absent. The caller renames ``target`` into place when it is complete.
        """
        try:
            stream = obstore.get(self.store, self._object(key)).stream(min_chunk_size=FETCH_CHUNK)
        except FileNotFoundError:
            raise _gone() from None
        except _FAILURES as exc:
            raise _unavailable(exc) from None
        size = 0
        with target.open("wb") as writer:
            while True:
                try:
                    chunk = next(stream)
                except StopIteration:
                    return size
                except _FAILURES as exc:
                    raise _unavailable(exc) from None
                writer.write(chunk)
                size += len(chunk)

    def _size_at(self, path: str) -> int | None:
        try:
            return int(obstore.head(self.store, path)["size"])
        except FileNotFoundError:
            return None
        except _FAILURES as exc:
            raise _unavailable(exc) from None

    def open(self, key: str) -> BinaryIO:
        path = self._object(key)
        size = self._size_at(path)
        if size is None:
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        return io.BufferedReader(_RangedObject(self.store, path, size), buffer_size=READ_BUFFER)

    def exists(self, key: str) -> bool:
        try:
            return self._size_at(self._object(key)) is not None
        except FileNotFound:
            return False

    def delete(self, key: str) -> None:
        if not self.exists(key):
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        try:
            obstore.delete(self.store, self._object(key))
        except _FAILURES as exc:
            raise _unavailable(exc) from None

    def list_blobs(self, prefix: str = "", older_than_us: int | None = None) -> Iterator[BlobInfo]:
        """Objects directly under the store's prefix whose key starts with ``prefix``.

        obstore lists by whole path segments, so a key prefix is matched here, over the listing of
        the store's prefix (the sweeper, its one caller in the service, lists everything).
        """
        try:
            for page in obstore.list(self.store, prefix=self.prefix.rstrip("/") or None, chunk_size=1000):
                for entry in page:
                    key = entry["path"][len(self.prefix) :]
                    modified_at_us = int(entry["last_modified"].timestamp() * 1_000_000)
                    if "/" in key or not key.startswith(prefix):
                        continue
                    if older_than_us is not None and modified_at_us >= older_than_us:
                        continue
                    yield BlobInfo(key, int(entry["size"]), modified_at_us)
        except _FAILURES as exc:
            raise _unavailable(exc) from None
