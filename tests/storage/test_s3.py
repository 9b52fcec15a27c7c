"""What only the S3 store does, against a real SeaweedFS: checksums and server-made object keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.errors import StorageUnavailable
from app.storage.names import new_stored_name
from app.storage.s3 import S3BlobStore
from tests import seaweedfs


@pytest.fixture
def bucket(s3_endpoint: str) -> Iterator[tuple[Any, str]]:
    s3 = seaweedfs.client(s3_endpoint)
    with seaweedfs.fresh_bucket(s3) as name:
        yield s3, name


def test_bytes_changed_after_staging_are_refused(bucket: tuple[Any, str], tmp_path: Path) -> None:
    s3, name = bucket
    store = S3BlobStore(s3, name, "lightbox", tmp_path)
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


def test_objects_live_under_the_prefix_only(bucket: tuple[Any, str], tmp_path: Path) -> None:
    s3, name = bucket
    store = S3BlobStore(s3, name, "/site-a/instances/", tmp_path)
    staged = store.stage()
    staged.write(b"data")
    staged.flush_to_disk()
    key = new_stored_name("x.dcm")
    store.put(staged, key)
    listed = [entry["Key"] for entry in s3.list_objects_v2(Bucket=name)["Contents"]]
    assert listed == [f"site-a/instances/{key}"]
    assert not staged.path.exists()  # the staged copy is gone once the object is there
