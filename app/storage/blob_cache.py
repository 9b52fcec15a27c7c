"""A bounded on-disk read-through cache of object-store blobs, one per replica (:class:`LocalFiles`).

Parsers, decoders and downloads read stored files by path; with an object store the path is a
local copy kept here, so a repeated view does not fetch the object again (stored files never
change: a key names one content for ever). Rules:

* a copy becomes visible only complete: fetched into a temporary file, then renamed into place;
* readers of the same key at the same moment fetch it once (the others wait for that fetch);
* the least recently read copies are removed once the total passes ``budget`` bytes (a reader
  that already opened an evicted copy keeps reading it: POSIX keeps an unlinked file until closed);
* a deleted instance's copy is removed on the replica that deleted it (:meth:`forget`); other
  replicas never serve it, as every read asks the index first (ARCHITECTURE rule 10).

Copies found at start-up (a restart) are adopted, oldest read first; temporary files are removed.
Every method blocks; callers run them in worker threads.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from typing import Protocol

from app.errors import FileNotFound, StorageUnavailable
from app.storage.names import uuid_of_key

TEMP_SUFFIX = ".part"


class Fetcher(Protocol):
    """What the cache reads from: an object store that can stream one blob into a local file."""

    def fetch_to(self, key: str, target: Path) -> int: ...


class BlobCache:
    """Local copies of blobs under ``folder``, at most ``budget`` bytes of them (LRU)."""

    def __init__(self, source: Fetcher, folder: Path, budget: int) -> None:
        self.source = source
        self.folder = folder
        self.budget = budget
        self.hits = 0
        self.misses = 0
        self._sizes: OrderedDict[str, int] = OrderedDict()  # key -> bytes, least recently read first
        self._total = 0
        self._lock = threading.Lock()
        self._fetching: dict[str, threading.Lock] = {}

    def prepare(self) -> None:
        """Create the folder, remove half-fetched files, adopt complete copies (least recently read first)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        found: list[tuple[float, str, int]] = []
        for entry in os.scandir(self.folder):
            if not entry.is_file():
                continue
            if entry.name.endswith(TEMP_SUFFIX) or uuid_of_key(entry.name) is None:
                Path(entry.path).unlink(missing_ok=True)
                continue
            stat = entry.stat()
            found.append((stat.st_atime, entry.name, stat.st_size))
        with self._lock:
            for _, key, size in sorted(found):
                self._sizes[key] = size
                self._total += size
            self._evict_locked(keep=None)

    @property
    def total_bytes(self) -> int:
        return self._total

    def _path(self, key: str) -> Path:
        if uuid_of_key(key) is None:  # server-made keys only: never a path outside the folder
            raise FileNotFound(f"no stored file is named {key[:80]!r}")
        return self.folder / key

    def local_path(self, key: str) -> Path:
        """A complete local copy of the blob, fetched now unless it is already here."""
        path = self._path(key)
        with self._lock:
            if key in self._sizes and path.is_file():
                self._sizes.move_to_end(key)
                self.hits += 1
                return path
            fetching = self._fetching.setdefault(key, threading.Lock())
        with fetching:  # one fetch per key: who comes second finds the copy the first one made
            with self._lock:
                if key in self._sizes and path.is_file():
                    self._sizes.move_to_end(key)
                    self.hits += 1
                    return path
                self.misses += 1
            try:
                size = self._fetch(key, path)
            finally:
                with self._lock:
                    self._fetching.pop(key, None)
        with self._lock:
            self._total -= self._sizes.pop(key, 0)
            self._sizes[key] = size
            self._total += size
            self._evict_locked(keep=key)
        return path

    def _fetch(self, key: str, path: Path) -> int:
        temp = self.folder / f"{key}.{uuid.uuid4().hex}{TEMP_SUFFIX}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            size = self.source.fetch_to(key, temp)
            temp.replace(path)  # visible only complete
            return size
        except OSError as exc:  # the local cache folder, not the store: full, read-only, failing
            temp.unlink(missing_ok=True)
            reason = errno.errorcode.get(exc.errno or 0, "unknown error")
            raise StorageUnavailable(f"the blob cache folder failed ({reason})") from None
        except BaseException:
            temp.unlink(missing_ok=True)
            raise

    def _evict_locked(self, keep: str | None) -> None:
        """Remove least recently read copies until the total fits (never ``keep``, just fetched)."""
        for key in list(self._sizes):
            if self._total <= self.budget:
                return
            if key == keep:
                continue
            self._total -= self._sizes.pop(key)
            (self.folder / key).unlink(missing_ok=True)

    def forget(self, key: str) -> None:
        """Remove the copy of a deleted blob (if any)."""
        with self._lock:
            size = self._sizes.pop(key, None)
            if size is not None:
                self._total -= size
        with contextlib.suppress(FileNotFound):  # not a key of ours: nothing cached under it
            self._path(key).unlink(missing_ok=True)
