"""Blobs in an S3-compatible object store (AWS S3, SeaweedFS, MinIO, Ceph): :class:`app.storage.base.BlobStore`.

Uploads are staged on local disk as for the folder (validated there), then put with
``If-None-Match: *`` (never overwriting) and the staged file's SHA-256 as the object's checksum, so
the store refuses bytes that changed on the way. The file is streamed from disk, never held in
memory. Reads are ranged GETs behind a buffered, seekable reader: reading one frame of a large file
fetches that range only; a whole object is fetched with one streamed GET into a local file (the
read-through cache, :mod:`app.storage.blob_cache`). Files larger than ``multipart_bytes`` go up as a
multipart upload (parts read from disk one at a time, each with its SHA-256; the completion is
``If-None-Match: *``). One client per process, shared by the worker threads (boto3 clients are
thread-safe): measured against aiobotocore and obstore in benchmarks/s3_clients.py.

Keys are ``<uuid>.dcm`` (:func:`app.storage.names.object_key`): the client's file name, which may
carry a patient's name, never reaches the store.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from app.config import S3Location
from app.errors import FileNotFound, StorageUnavailable
from app.storage.base import BlobInfo, Staged
from app.storage.local import StagedFile, clear_staging
from app.storage.names import object_key

READ_BUFFER = 1 << 20  # one ranged GET fetches at least this much
MULTIPART_BYTES = 64 << 20  # files from this size go up in parts
PART_BYTES = 16 << 20  # S3 parts are 5 MiB at least (but the last)
FETCH_CHUNK = 1 << 20
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,250}$")


_LOADER: list[Any] = []  # botocore's model loader, parsed once per process (its JSON takes ~0.5 s)


def _botocore_session() -> Any:
    """A fresh botocore session (credentials read from the environment now) sharing the parsed models."""
    import botocore.session

    session = botocore.session.get_session()
    if _LOADER:
        session.register_component("data_loader", _LOADER[0])
    else:
        _LOADER.append(session.get_component("data_loader"))
    return session


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


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

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        staging: Path,
        multipart_bytes: int = MULTIPART_BYTES,
        part_bytes: int = PART_BYTES,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.staging = staging
        self.multipart_bytes, self.part_bytes = multipart_bytes, part_bytes

    @classmethod
    def connect(cls, where: S3Location, endpoint_url: str | None, staging: Path) -> S3BlobStore:
        """The process's one client, from the standard AWS credential chain (``AWS_ACCESS_KEY_ID``, ...).

        Short connect timeouts and few retries: a store that is down answers 503 within seconds
        rather than holding requests; the client reconnects by itself when the store returns.
        """
        import boto3
        import botocore.config

        config = botocore.config.Config(
            s3={"addressing_style": "path"} if endpoint_url else {},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=3,
            read_timeout=30,
            max_pool_connections=64,
            request_checksum_calculation="when_required",  # ours: SHA-256 of the staged file
            response_checksum_validation="when_required",
        )
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        session = boto3.session.Session(botocore_session=_botocore_session())
        client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
        return cls(client, where.bucket, where.prefix, staging)

    def prepare(self) -> int:
        """Create the staging folder and remove what a crash left in it; return how many."""
        return clear_staging(self.staging)

    def key_for(self, name: str) -> str:
        """:meth:`BlobStore.key_for`: ``<uuid>.dcm`` (no patient data in the bucket)."""
        return object_key(name)

    def ping(self) -> None:
        """The bucket answers (readiness): :class:`StorageUnavailable` otherwise."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except Exception as exc:
            raise _unavailable(exc) from None

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
        target = self._object(key)
        try:
            if staged.size >= self.multipart_bytes:
                self._put_parts(staged, target)
            else:
                with staged.path.open("rb") as body:
                    self.client.put_object(
                        Bucket=self.bucket,
                        Key=target,
                        Body=body,
                        ContentLength=staged.size,
                        IfNoneMatch="*",
                        ChecksumSHA256=_b64(bytes.fromhex(staged.sha256)),
                    )
        except Exception as exc:
            raise _unavailable(exc) from None
        staged.discard()

    def _put_parts(self, staged: StagedFile, target: str) -> None:
        """A multipart upload, one part in memory at a time; aborted (no trace left) on any failure."""
        started = self.client.create_multipart_upload(Bucket=self.bucket, Key=target, ChecksumAlgorithm="SHA256")
        upload_id = started["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with staged.path.open("rb") as body:
                while data := body.read(self.part_bytes):
                    number = len(parts) + 1
                    checksum = _b64(hashlib.sha256(data).digest())
                    answer = self.client.upload_part(
                        Bucket=self.bucket,
                        Key=target,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=data,
                        ChecksumSHA256=checksum,
                    )
                    parts.append({"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum})
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=target,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            with contextlib.suppress(Exception):  # else the store's expiry of incomplete uploads cleans up
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=target, UploadId=upload_id)
            raise

    def fetch_to(self, key: str, target: Path) -> int:
        """Stream the whole object into ``target`` (one GET, never whole in memory); its size.

        FileNotFound when absent. The caller renames ``target`` into place when it is complete.
        """
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self._object(key))
            size = 0
            with target.open("wb") as writer:
                for chunk in answer["Body"].iter_chunks(FETCH_CHUNK):
                    writer.write(chunk)
                    size += len(chunk)
            return size
        except FileNotFound:
            raise
        except OSError:
            raise
        except Exception as exc:
            if _missing(exc):
                raise FileNotFound("the stored file is no longer in the object store") from None
            raise _unavailable(exc) from None

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
