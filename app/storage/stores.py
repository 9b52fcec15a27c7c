"""The blob store the settings name (``LIGHTBOX_STORAGE_URL``), with how its blobs are read by path.

* ``file:///path`` (the default, from ``LIGHTBOX_STORAGE_DIR``): the folder, read in place;
* ``s3://bucket/prefix``: the object store (one client per process), read through the bounded
  on-disk cache of this replica (``LIGHTBOX_BLOB_CACHE_DIR``, ``LIGHTBOX_BLOB_CACHE_BYTES``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from app.config import Settings, blob_cache_dir, s3_location, staging_dir
from app.storage.base import LocalFiles
from app.storage.blob_cache import BlobCache
from app.storage.local import LocalBlobStore
from app.storage.s3 import S3BlobStore


@dataclass(frozen=True)
class Storage:
    """The store, its local files, and the local folder whose free space the metrics report."""

    store: LocalBlobStore | S3BlobStore
    files: LocalFiles
    staging: Path
    cache: BlobCache | None = None

    def prepare(self) -> int:
        """Create the local folders, clear what a crash left in them; the partial uploads removed."""
        removed = self.store.prepare()
        if self.cache is not None:
            self.cache.prepare()
        return removed

    @property
    def local_root(self) -> Path:
        """The folder of the stored files, or, with an object store, the staging folder."""
        return self.store.root if isinstance(self.store, LocalBlobStore) else self.staging


def open_storage(settings: Settings) -> Storage:
    """The configured store; nothing is contacted or created yet (see :meth:`Storage.prepare`)."""
    where = s3_location(settings)
    staging = staging_dir(settings)
    if where is None:
        folder = LocalBlobStore(settings.storage_dir, settings.staging_dir)
        return Storage(folder, folder, folder.staging)
    store = S3BlobStore.connect(where, settings.s3_endpoint_url, staging)
    cache = BlobCache(store, blob_cache_dir(settings), settings.blob_cache_bytes)
    return Storage(store, cache, staging, cache)
