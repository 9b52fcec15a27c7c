"""What only the S3 store does, against a real SeaweedFS: checksums and server-made object keys."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.errors import StorageUnavailable
from app.storage.local import StagedFile
from app.storage.names import new_stored_name
from app.storage.s3 import S3BlobStore
from tests import seaweedfs


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[tuple[Any, str]]:
    """A boto3 client (to look into the bucket from outside) and a fresh bucket."""
    s3 = seaweedfs.client(s3_endpoint)
    with seaweedfs.fresh_bucket(s3) as name:
        yield s3, name


@pytest.fixture
def connect(s3_endpoint: str, bucket: tuple[Any, str], tmp_path: Path) -> Callable[..., S3BlobStore]:
    """The service's store over the fresh bucket: ``connect(prefix, multipart_bytes=..., part_bytes=...)``."""
    return lambda prefix, **sizes: seaweedfs.blob_store(s3_endpoint, bucket[1], prefix, tmp_path, **sizes)


def test_bytes_changed_after_staging_are_refused(connect: Callable[..., S3BlobStore]) -> None:
    store = connect("lightbox")
    staged = store.stage()
    staged.write(b"validated bytes")
    staged.flush_to_disk()
    with staged.path.open("r+b") as handle:  # the disk changed them after validation
        handle.write(b"V")
    key = new_stored_name("x.dcm")
    with pytest.raises(StorageUnavailable):
        store.put(staged, key)
    staged.discard()
    assert not store.exists(key)


def test_objects_live_under_the_prefix_only(bucket: tuple[Any, str], connect: Callable[..., S3BlobStore]) -> None:
    s3, name = bucket
    store = connect("/site-a/instances/")
    staged = store.stage()
    staged.write(b"data")
    staged.flush_to_disk()
    key = new_stored_name("x.dcm")
    store.put(staged, key)
    listed = [entry["Key"] for entry in s3.list_objects_v2(Bucket=name)["Contents"]]
    assert listed == [f"site-a/instances/{key}"]
    assert not staged.path.exists()  # the staged copy is gone once the object is there


MiB = 1 << 20


def staged_file(store: S3BlobStore, size: int) -> StagedFile:
    staged = store.stage()
    data = os.urandom(size)
    for start in range(0, size, MiB):
        staged.write(data[start : start + MiB])
    staged.flush_to_disk()
    return staged


def uploads_in_progress(s3: Any, bucket: str) -> list[Any]:
    return list(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def test_a_large_file_goes_up_in_parts(bucket: tuple[Any, str], connect: Callable[..., S3BlobStore]) -> None:
    """From ``multipart_bytes`` on: parts of ``part_bytes`` (S3's least but the last: 5 MiB), one object."""
    s3, name = bucket
    store = connect("lightbox", multipart_bytes=8 * MiB, part_bytes=5 * MiB)
    staged = staged_file(store, 11 * MiB + 123)
    expected = staged.path.read_bytes()
    key = new_stored_name("large.dcm")
    store.put(staged, key)
    head = s3.head_object(Bucket=name, Key=f"lightbox/{key}")
    assert head["ContentLength"] == len(expected)
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB: a multipart object's ETag counts its parts
    assert s3.get_object(Bucket=name, Key=f"lightbox/{key}")["Body"].read() == expected
    with store.open(key) as reader:  # ranged reads across a part boundary
        reader.seek(5 * MiB - 10)
        assert reader.read(20) == expected[5 * MiB - 10 : 5 * MiB + 10]
    assert uploads_in_progress(s3, name) == [] and not staged.path.exists()
    small = staged_file(store, 8 * MiB - 1)  # below the threshold: one PUT
    store.put(small, new_stored_name("small.dcm"))
    assert sum("-" in o["ETag"] for o in s3.list_objects_v2(Bucket=name)["Contents"]) == 1


def test_a_failed_multipart_upload_is_aborted(bucket: tuple[Any, str], connect: Callable[..., S3BlobStore]) -> None:
    """Bytes changed on disk after validation (the parts went up): no object, no upload left in progress."""
    s3, name = bucket
    store = connect("lightbox", multipart_bytes=8 * MiB, part_bytes=5 * MiB)
    staged = staged_file(store, 11 * MiB)
    with staged.path.open("r+b") as handle:
        handle.seek(10 * MiB)  # in the last part
        handle.write(b"changed")
    key = new_stored_name("large.dcm")
    with pytest.raises(StorageUnavailable, match="changed"):
        store.put(staged, key)
    assert not store.exists(key)
    assert uploads_in_progress(s3, name) == []
    assert "Contents" not in s3.list_objects_v2(Bucket=name)
    assert staged.path.exists()  # the caller discards it (the upload's undo)
    staged.discard()


def test_a_large_file_never_replaces_an_existing_object(
    bucket: tuple[Any, str], connect: Callable[..., S3BlobStore]
) -> None:
    """A multipart upload cannot be conditional: the store refuses an existing key before it starts."""
    s3, name = bucket
    store = connect("lightbox", multipart_bytes=8 * MiB, part_bytes=5 * MiB)
    key = new_stored_name("x.dcm")
    first = staged_file(store, 1000)
    kept = first.path.read_bytes()
    store.put(first, key)
    large = staged_file(store, 9 * MiB)
    with pytest.raises(StorageUnavailable) as refused:
        store.put(large, key)
    assert key not in str(refused.value)
    large.discard()
    with store.open(key) as reader:
        assert reader.read() == kept
    assert uploads_in_progress(s3, name) == []


def test_a_store_that_is_down_fails_fast_without_naming_keys(tmp_path: Path) -> None:
    """Nothing listens on the endpoint: readiness, reads and puts fail within seconds, as
    StorageUnavailable naming the failure's class only (a key names a stored file)."""
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{probe.getsockname()[1]}"
    store = seaweedfs.blob_store(endpoint, "lightbox-down", "lightbox", tmp_path)
    key = new_stored_name("Doe^Jane.dcm")
    staged = staged_file(store, 1000)
    started = time.monotonic()
    for call in (store.ping, lambda: store.open(key), lambda: store.put(staged, key), lambda: list(store.list_blobs())):
        with pytest.raises(StorageUnavailable) as failed:
            call()
        assert failed.value.message.startswith("the object store failed (") and key not in failed.value.message
    assert time.monotonic() - started < 20
    staged.discard()
