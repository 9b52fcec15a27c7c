"""ZIP archives in an upload: members are extracted one at a time into staging, never into memory.

Guards against archives built to exhaust the server (zip bombs), checked on the central
directory before anything is inflated and again on the bytes actually inflated: member count,
total uncompressed size, and each member's compression ratio.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.errors import InvalidRequest, TooManyFiles, UploadTooLarge
from app.storage.base import BlobStore
from app.storage.local import StagedFile

CHUNK = 1 << 20
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; end of central directory (empty archive)
DICOM_MAGIC_AT = 128  # a Part 10 file's "DICM" (PS3.10 §7.1), even when its preamble looks like a ZIP


@dataclass(frozen=True)
class ZipLimits:
    max_members: int
    max_total_bytes: int
    max_ratio: int
    max_member_bytes: int


def is_zip(path: Path) -> bool:
    """A ZIP archive rather than a DICOM file (a DICOM preamble may mimic a ZIP: ``DICM`` wins)."""
    with path.open("rb") as handle:
        head = handle.read(DICOM_MAGIC_AT + 4)
    return head[:4] in ZIP_MAGIC and head[DICOM_MAGIC_AT : DICOM_MAGIC_AT + 4] != b"DICM"


class Archive:
    """An uploaded ZIP, opened from its staged file; iterate :meth:`members`, then :meth:`close`."""

    def __init__(self, path: Path, limits: ZipLimits) -> None:
        self.limits = limits
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise InvalidRequest(f"the ZIP archive is unreadable: {exc}") from None
        try:
            self.entries = [info for info in self._zip.infolist() if not info.is_dir()]
            self._check_directory()
        except BaseException:
            self._zip.close()
            raise

    def _check_directory(self) -> None:
        limits = self.limits
        if len(self.entries) > limits.max_members:
            raise TooManyFiles(f"the ZIP archive lists {len(self.entries)} files, more than {limits.max_members}")
        total = sum(info.file_size for info in self.entries)
        if total > limits.max_total_bytes:
            raise UploadTooLarge(f"the ZIP archive would inflate to {total} bytes, more than {limits.max_total_bytes}")
        for info in self.entries:
            if info.file_size > limits.max_ratio * max(info.compress_size, 1) and info.file_size > CHUNK:
                raise InvalidRequest(
                    f"ZIP member {info.filename[:80]!r} inflates more than {limits.max_ratio} times (a zip bomb?)"
                )

    def members(self) -> Iterator[zipfile.ZipInfo]:
        yield from self.entries

    def extract(self, info: zipfile.ZipInfo, store: BlobStore) -> StagedFile:
        """Inflate one member into a staged file, counting the bytes really produced."""
        staged = store.stage()
        limit = min(info.file_size, self.limits.max_member_bytes)
        try:
            with self._zip.open(info) as source:
                while chunk := source.read(CHUNK):
                    if staged.size + len(chunk) > limit:
                        raise UploadTooLarge(f"ZIP member {info.filename[:80]!r} inflates past its declared size")
                    staged.write(chunk)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError) as exc:
            staged.discard()
            raise InvalidRequest(f"ZIP member {info.filename[:80]!r} cannot be extracted: {exc}") from None
        except BaseException:
            staged.discard()
            raise
        return staged

    def close(self) -> None:
        self._zip.close()
