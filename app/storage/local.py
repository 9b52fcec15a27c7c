"""Blobs in a local folder: confined to its root, written atomically (temp -> fsync -> rename).

Every method blocks; callers run them in a worker thread. Uploads are staged in
``<root>/.staging`` (same file system, so the final rename is atomic; ``LIGHTBOX_STAGING_DIR``
elsewhere costs a copy) and stray staged files from a crash are removed at start-up. Each
staged file is ``flock``-ed while it is being received, so a worker process (re)starting
beside others leaves their live uploads alone.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from app.errors import FileNotFound, StorageFull, StorageUnavailable
from app.storage.base import BlobInfo, Staged
from app.storage.names import check_stored_name, is_stored_name

STAGING = ".staging"
#: Written at first start, never over an existing one: its id is recorded in the index, so a start on
#: an empty, unmounted or foreign folder is recognised (app.services.storage_guard). No patient data.
MARKER = ".lightbox-storage"


@contextmanager
def storage_errors() -> Iterator[None]:
    """Translate the OS errors a full or read-only disk raises into domain errors."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull("the storage device is full: the file was not saved") from None
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise StorageUnavailable("the storage folder is not writable: the file was not saved") from None
        name = errno.errorcode.get(exc.errno or 0, "unknown error")
        raise StorageUnavailable(f"the storage device failed ({name}): the file was not saved") from None


class StagedFile:
    """A file being received: appended to, then made durable and published, or discarded."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self._hash = hashlib.sha256()
        with storage_errors():
            self._handle = path.open("xb")
        fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # "in use" for other workers' sweeps

    def write(self, data: bytes) -> None:
        with storage_errors():
            self._handle.write(data)
        self._hash.update(data)
        self.size += len(data)

    def flush_buffer(self) -> None:
        """Hand buffered bytes to the OS so the file can be read by path (no fsync)."""
        with storage_errors():
            self._handle.flush()

    @property
    def sha256(self) -> str:
        """SHA-256 of the bytes written so far (computed while writing: the file is never read twice)."""
        return self._hash.hexdigest()

    def flush_to_disk(self, mtime_ns: int | None = None) -> None:
        """fsync the bytes: an acknowledged upload must survive a power cut.

        ``mtime_ns`` stamps the upload time on the file, so ``lightbox reindex`` recovers it.
        """
        with storage_errors():
            self._handle.flush()
            if mtime_ns is not None:
                os.utime(self._handle.fileno(), ns=(mtime_ns, mtime_ns))
            os.fsync(self._handle.fileno())
        # Kept open (and locked) until published or discarded: validation may take a while.

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)


def _owner_alive(path: Path) -> bool:
    """Staged names start with the receiving process's PID: a live owner may not have locked it yet."""
    pid_text = path.name.split("-", 1)[0]
    if not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return int(pid_text) != os.getpid()


def _in_use(path: Path) -> bool:
    """True while another live worker process is still receiving into this staged file.

    The lock says so once taken; the PID in the name covers the moment between creating the file
    and locking it, when another worker's start-up sweep could otherwise remove it.
    """
    if _owner_alive(path):
        return True
    try:
        with path.open("rb") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def clear_staging(staging: Path) -> int:
    """Create the staging folder and remove what a crash left in it (not other workers' live uploads)."""
    staging.mkdir(parents=True, exist_ok=True)
    removed = 0
    for stray in staging.iterdir():
        if not _in_use(stray):
            stray.unlink(missing_ok=True)
            removed += 1
    return removed


class LocalBlobStore:
    """Stored files in one folder, addressed only by server-made names (:class:`app.storage.base.BlobStore`).

    A blob's key is its stored name (the folder's layout since the start, which ``lightbox reindex``
    reads the client's file name back from); the files are local, so readers get their path directly.
    """

    remote = False  # publishing is a link: a duplicate is cheaper to publish and undo than to look up first

    def __init__(self, root: Path, staging: Path | None = None) -> None:
        self.root = root.resolve()
        self.staging = staging.resolve() if staging is not None else self.root / STAGING

    def prepare(self) -> int:
        """Create the folders and remove files a crash left in staging; return how many.

        A read-only folder is left as it is (nothing can have been staged there since it became
        read-only; uploads answer 503 and /readyz says why).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        if self.read_only():
            return 0
        return clear_staging(self.staging)

    def key_for(self, name: str) -> str:
        """:meth:`BlobStore.key_for`: the stored name itself."""
        return check_stored_name(name)

    def local_path(self, key: str) -> Path:
        """:class:`app.storage.base.LocalFiles`: the stored file itself (no copy)."""
        return self.existing_path(key)

    def forget(self, key: str) -> None:
        """:class:`app.storage.base.LocalFiles`: nothing is cached for a folder."""

    def read_only(self) -> bool:
        """True when the folder cannot be written (a read-only mount, or permissions)."""
        return not os.access(self.root, os.W_OK)

    def read_marker(self) -> str | None:
        """The storage id in the marker file; None when there is none (or it is unreadable)."""
        try:
            data = json.loads((self.root / MARKER).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None
        value = data.get("storage_id") if isinstance(data, dict) else None
        return value if isinstance(value, str) and value else None

    def write_marker(self, storage_id: str) -> str:
        """Write the marker unless one exists (then that one wins); the id now in the folder is returned."""
        target = self.root / MARKER
        temp = self.root / f"{MARKER}.{os.getpid()}-{uuid.uuid4().hex}.tmp"
        with storage_errors():
            with temp.open("xb") as handle:
                handle.write(json.dumps({"storage_id": storage_id, "format": 1}).encode() + b"\n")
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, target)  # never replaces an existing marker
            except FileExistsError:
                pass
            finally:
                temp.unlink()
            self._sync_dir()
        found = self.read_marker()
        if found is None:
            raise StorageUnavailable("the storage marker could not be written")
        return found

    def stage(self) -> StagedFile:
        return StagedFile(self.staging / f"{os.getpid()}-{uuid.uuid4().hex}.part")

    def put(self, staged: Staged, key: str) -> None:
        """:meth:`BlobStore.put`: the key is a stored name (the folder's layout since the start)."""
        if not isinstance(staged, StagedFile):
            raise TypeError("the local folder publishes only files it staged itself")
        self.publish(staged, key)

    def open(self, key: str) -> BinaryIO:
        """:meth:`BlobStore.open`: the file itself, read from disk as it is sought."""
        path = self.existing_path(key)
        try:
            return path.open("rb")
        except FileNotFoundError:
            raise FileNotFound(f"no stored file is named {key[:80]!r}") from None

    def exists(self, key: str) -> bool:
        try:
            return self.path_of(key).is_file()
        except FileNotFound:
            return False

    def list_blobs(self, prefix: str = "", older_than_us: int | None = None) -> Iterator[BlobInfo]:
        """:meth:`BlobStore.list_blobs`: stored names only (staging, the marker and foreign files are not blobs)."""
        for name in self.names():
            if not name.startswith(prefix):
                continue
            try:
                stat = (self.root / name).stat()
            except FileNotFoundError:
                continue  # deleted while listing
            modified_at_us = stat.st_mtime_ns // 1000
            if older_than_us is None or modified_at_us < older_than_us:
                yield BlobInfo(name, stat.st_size, modified_at_us)

    def publish(self, staged: StagedFile, name: str) -> None:
        """Atomically give the fsync'ed staged file its stored name, then make the rename durable."""
        target = self.path_of(name)
        with storage_errors():
            try:
                os.link(staged.path, target)  # fails rather than overwrite
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                self._copy_in(staged.path, target)  # LIGHTBOX_STAGING_DIR on another file system
            staged.path.unlink()
            staged.close()
            self._sync_dir()

    def _copy_in(self, source: Path, target: Path) -> None:
        """Copy to a temporary file in the folder, fsync, then link it into place (still never overwriting)."""
        temp = self.root / STAGING / f"{os.getpid()}-{uuid.uuid4().hex}.part"
        temp.parent.mkdir(exist_ok=True)
        try:
            with source.open("rb") as reader, temp.open("xb") as writer:
                shutil.copyfileobj(reader, writer, 1 << 20)
                writer.flush()
                os.fsync(writer.fileno())
            shutil.copystat(source, temp)  # the upload time stamped on the staged file
            os.link(temp, target)
        finally:
            temp.unlink(missing_ok=True)

    def _sync_dir(self) -> None:
        fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def path_of(self, name: str) -> Path:
        """The path of a stored name; only names of the server's shape, only inside the root."""
        path = self.root / check_stored_name(name)
        if path.parent != self.root:
            raise FileNotFound(f"no stored file is named {name[:80]!r}")
        return path

    def existing_path(self, name: str) -> Path:
        path = self.path_of(name)
        if not path.is_file():
            raise FileNotFound(f"no stored file is named {name[:80]!r}")
        return path

    def delete(self, name: str) -> None:
        path = self.existing_path(name)
        with storage_errors():
            path.unlink()
            self._sync_dir()

    def discard(self, name: str) -> None:
        """Undo a publish (the index refused it); silent if the file is already gone."""
        try:
            self.path_of(name).unlink(missing_ok=True)
            self._sync_dir()
        except OSError:
            pass

    def names(self) -> list[str]:
        """Every stored name in the folder (staging and foreign files ignored), for ``lightbox reindex``."""
        if not self.root.is_dir():
            return []  # not there at all (not mounted, mistyped): as empty, for the guard to judge
        return sorted(entry.name for entry in os.scandir(self.root) if entry.is_file() and is_stored_name(entry.name))
