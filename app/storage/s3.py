"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph): :class:`app.storage.base.BlobStore`.

Uploads are staged on local disk as for the folder (validated there), then put with
``If-None-Match: *`` (never overwriting) and the staged file's SHA-256 as the object's checksum, so
the store refuses bytes that changed on the way. The file is streamed from disk, never held in
memory. Reads are ranged GETs behind a buffered, seekable reader: reading one frame of a large file
fetches that range only. One client per store, shared by the worker threads (boto3 clients are
thread-safe). Not wired into the app yet (issue 12): the settings come with the read-through cache.
"""

from __future__ import annotations

import base64
import io
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from app.errors import FileNotFound, StorageUnavailable
from app.storage.base import BlobInfo, Staged
from app.storage.local import StagedFile

READ_BUFFER = 1 << 20  # one ranged GET fetches at least this much
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,250}$")


def _missing(exc: Exception) -> bool:
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


def _unavailable(exc: Exception) -> StorageUnavailable:
    """The store's failure, named by its error code only (never a key, which names a stored file)."""
    code = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return StorageUnavailable(f"the object store failed ({code})")


class _RangedObject(io.RawIOBase):
    """A seekable raw reader of one object: each read is a ranged GET (``Range: bytes=a-b``)."""

    def __init__(self, client: Any, bucket: str, key: str, size: int) -> None:
        super().__init__()
        self._client, self._bucket, self._key, self._size = client, bucket, key, size
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
        end = self._position + wanted - 1
        try:
            answer = self._client.get_object(Bucket=self._bucket, Key=self._key, Range=f"bytes={self._position}-{end}")
            data = answer["Body"].read()
        except Exception as exc:
            if _missing(exc):
                raise FileNotFound("the stored file is no longer in the object store") from None
            raise _unavailable(exc) from None
        memoryview(buffer)[: len(data)] = data
        self._position += len(data)
        return len(data)


class S3BlobStore:
    """Objects ``<prefix><key>`` in one bucket; keys are server-made (no patient data, no ``/``)."""

    def __init__(self, client: Any, bucket: str, prefix: str, staging: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.staging = staging

    def _object(self, key: str) -> str:
        if not _KEY.match(key):
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        return self.prefix + key

    def stage(self) -> StagedFile:
        self.staging.mkdir(parents=True, exist_ok=True)
        return StagedFile(self.staging / f"{os.getpid()}-{uuid.uuid4().hex}.part")

    def put(self, staged: Staged, key: str) -> None:
        """Stream the staged file up, refused if the key exists or the bytes differ from its SHA-256."""
        if not isinstance(staged, StagedFile):
            raise TypeError("the object store publishes only files staged on local disk")
        checksum = base64.b64encode(bytes.fromhex(staged.sha256)).decode()
        try:
            with staged.path.open("rb") as body:
                self.client.put_object(
                    Bucket=self.bucket,
                    Key=self._object(key),
                    Body=body,
                    ContentLength=staged.size,
                    IfNoneMatch="*",
                    ChecksumSHA256=checksum,
                )
        except FileNotFound:
            raise
        except Exception as exc:
            raise _unavailable(exc) from None
        staged.discard()

    def _size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=self._object(key))["ContentLength"])
        except FileNotFound:
            return None
        except Exception as exc:
            if _missing(exc):
                return None
            raise _unavailable(exc) from None

    def open(self, key: str) -> BinaryIO:
        size = self._size(key)
        if size is None:
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        raw = _RangedObject(self.client, self.bucket, self._object(key), size)
        return io.BufferedReader(raw, buffer_size=READ_BUFFER)

    def exists(self, key: str) -> bool:
        return self._size(key) is not None

    def delete(self, key: str) -> None:
        if not self.exists(key):
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        try:
            self.client.delete_object(Bucket=self.bucket, Key=self._object(key))
        except Exception as exc:
            raise _unavailable(exc) from None

    def list_blobs(self, prefix: str = "", older_than_us: int | None = None) -> Iterator[BlobInfo]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for entry in page.get("Contents", []):
                    key = str(entry["Key"])[len(self.prefix) :]
                    modified_at_us = int(entry["LastModified"].timestamp() * 1_000_000)
                    if "/" in key or (older_than_us is not None and modified_at_us >= older_than_us):
                        continue
                    yield BlobInfo(key, int(entry["Size"]), modified_at_us)
        except Exception as exc:
            raise _unavailable(exc) from None
