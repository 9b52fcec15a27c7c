"""The :class:`BlobStore` protocol the core owns: where the bytes of stored files live.

Writes follow ARCHITECTURE rule 5: a file is staged on local disk and validated, then ``put``
under a server-made key (never overwriting), then committed to the index; a blob whose commit never
happened is found again by listing the store by age. Reads open a seekable file object, so a range
(a frame, a bulk value) is read without loading the whole blob. Implementations: the local folder
(:mod:`app.storage.local`) and an S3-compatible store (:mod:`app.storage.s3`).

The index knows a file by its stored name (``<uuid>-<client's name>.dcm``, the API's name); the
store by a key it derives from that name with :meth:`BlobStore.key_for` (an object store's key
keeps the UUID only: no patient data). :func:`app.storage.names.uuid_of_key` maps a key back.
Code that needs a file by path (parsers, decoders, downloads) asks :class:`LocalFiles`: the
folder itself, or the read-through cache of an object store (:mod:`app.storage.blob_cache`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from app.storage.local import StagedFile


@dataclass(frozen=True)
class BlobInfo:
    """One stored blob as a listing reports it (``modified_at_us``: microseconds since the Unix epoch)."""

    key: str
    size: int
    modified_at_us: int


class Staged(Protocol):
    """A file being received on local disk: appended to, made durable, then put or discarded."""

    size: int

    @property
    def sha256(self) -> str: ...

    def write(self, data: bytes) -> None: ...

    def flush_to_disk(self, mtime_ns: int | None = None) -> None: ...

    def discard(self) -> None: ...


class BlobStore(Protocol):
    """Blobs by server-made key. Every method blocks; callers run them in a worker thread."""

    #: Whether a put sends the bytes over the network (an object store) rather than linking a local file:
    #: the upload path then asks the index for an identical file first, so a resent study costs a read
    #: per instance instead of a transfer and a delete.
    remote: bool

    def key_for(self, name: str) -> str:
        """The key of a stored name's blob; :class:`app.errors.FileNotFound` for a name of the wrong shape."""
        ...

    def stage(self) -> StagedFile:
        """A new staged file on local disk (the only local writes besides caches)."""
        ...

    def put(self, staged: Staged, key: str) -> None:
        """Publish a durable staged file under ``key``; fails rather than overwrite an existing blob."""
        ...

    def open(self, key: str) -> BinaryIO:
        """A seekable reader of the blob (ranges by ``seek`` + ``read``); FileNotFound when absent."""
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the blob; FileNotFound when absent."""
        ...

    def list_blobs(self, prefix: str = "", older_than_us: int | None = None) -> Iterator[BlobInfo]:
        """Blobs whose key starts with ``prefix`` (and last changed before ``older_than_us``), by key."""
        ...


class LocalFiles(Protocol):
    """Blobs as local files, for the code that reads by path. Every method blocks."""

    def local_path(self, key: str) -> Path:
        """A complete local file with the blob's bytes; :class:`app.errors.FileNotFound` when absent."""
        ...

    def forget(self, key: str) -> None:
        """Drop any local copy of a deleted blob."""
        ...
