"""The BlobStore contract (app/storage/base.py), run over every implementation: the local folder
and the S3 store against a real SeaweedFS. Real files in a temporary folder, no mocks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import FileNotFound
from app.storage.base import BlobStore
from app.storage.local import LocalBlobStore
from app.storage.names import new_stored_name
from tests import seaweedfs

PAYLOAD = bytes(range(256)) * 64  # 16 KiB, every byte value


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        local = LocalBlobStore(tmp_path / "blobs")
        local.prepare()
        yield local
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    with seaweedfs.fresh_bucket(seaweedfs.client(endpoint)) as bucket:
        yield seaweedfs.blob_store(endpoint, bucket, "lightbox/instances", tmp_path / "staging")


def put(store: BlobStore, data: bytes, key: str | None = None) -> str:
    key = key or new_stored_name("image.dcm")
    staged = store.stage()
    staged.write(data)
    staged.flush_to_disk()
    try:
        store.put(staged, key)
    except BaseException:
        staged.discard()  # as the upload service does when a put fails
        raise
    return key


def test_put_then_read_ranges_without_the_rest(store: BlobStore) -> None:
    key = put(store, PAYLOAD)
    assert store.exists(key)
    with store.open(key) as reader:
        reader.seek(1000)
        assert reader.read(24) == PAYLOAD[1000:1024]
        reader.seek(0)
        assert reader.read() == PAYLOAD


def test_put_never_overwrites(store: BlobStore) -> None:
    key = put(store, PAYLOAD)
    with pytest.raises(Exception):  # noqa: B017 - each store names its own refusal
        put(store, b"other bytes", key)
    with store.open(key) as reader:
        assert reader.read() == PAYLOAD


def test_delete_and_absent_keys(store: BlobStore) -> None:
    key = put(store, PAYLOAD)
    store.delete(key)
    assert not store.exists(key)
    with pytest.raises(FileNotFound):
        store.open(key)
    with pytest.raises(FileNotFound):
        store.delete(key)
    assert not store.exists("../../etc/passwd")
    with pytest.raises(FileNotFound):
        store.open("../../etc/passwd")


def test_list_by_prefix_and_age(store: BlobStore) -> None:
    first = put(store, b"a")
    time.sleep(1.1)  # S3 stores keep Last-Modified to the second: a second apart on both sides
    middle = time.time_ns() // 1000
    time.sleep(1.1)
    second = put(store, b"bb")
    listed = {info.key: info for info in store.list_blobs()}
    assert set(listed) == {first, second}
    assert listed[second].size == 2
    assert [info.key for info in store.list_blobs(older_than_us=middle)] == [first]
    assert [info.key for info in store.list_blobs(prefix=second[:8])] == [second]
    staged = store.stage()  # a file still being received is not a blob
    staged.write(b"partial")
    assert {info.key for info in store.list_blobs()} == {first, second}
    staged.discard()
