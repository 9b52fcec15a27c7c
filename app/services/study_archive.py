"""A study (or series) as one ZIP of its stored files: WADO-RS retrieve as ``application/zip``.

PS3.18 §8.7.3 (Supplement 211) lets a study, series or instance retrieve answer ``application/zip``:
the instances as Part 10 files named ``*.dcm``, which a browser saves like any download (it cannot
take ``multipart/related`` apart). Here the files are sent byte for byte as stored.

Streamed, never whole in memory: :mod:`zipfile` writes into a :class:`_Sink` whose bytes are taken
after every step, and each step (open a member, copy one chunk, close the archive) runs in a worker
thread, so the event loop never reads, deflates or writes (rule 6) and a slow client slows the
copying instead of filling memory (one chunk in flight). The archive is ZIP64 where a member or
offset needs it. Member names are made here from UIDs (``<Series Instance UID>/<SOP Instance UID>.dcm``),
never from an uploaded file name, so the listing carries nothing the files do not.

One ``download`` audit record per archive, written before the first byte (rule 9); what the caller
may not see is absent (404), as for every read.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from anyio import to_thread
from pydicom.uid import UID

from app.auth.principals import Principal
from app.errors import FileNotFound, NotAcceptable
from app.index.base import Located
from app.services.audit import Action
from app.services.instances import InstanceService

ZIP_MEDIA_TYPE = "application/zip"
CHUNK = 1 << 20
#: Members at least this large get ZIP64 local headers (their size is known before writing; zipfile adds
#: ZIP64 to the central directory by itself for offsets and member counts past the classic limits).
ZIP64_FROM = zipfile.ZIP64_LIMIT
DEFLATE_LEVEL = 1  # native pixel data shrinks 2-3x at level 1; more costs CPU for a few per cent
_UNSAFE = re.compile(r"[^0-9A-Za-z._-]")


def member_part(uid: str) -> str:
    """A UID as one path segment: conformant UIDs are digits and dots; anything else becomes ``_``."""
    part = _UNSAFE.sub("_", uid)[:128]
    return part if part.strip(".") else f"_{part}"


def member_names(found: list[Located]) -> list[str]:
    """``<series>/<instance>.dcm`` for each instance, unique within the archive."""
    names: list[str] = []
    taken: set[str] = set()
    for item in found:
        base = f"{member_part(item.series_instance_uid)}/{member_part(item.sop_instance_uid)}"
        name, count = f"{base}.dcm", 1
        while name in taken:
            count += 1
            name = f"{base}-{count}.dcm"
        taken.add(name)
        names.append(name)
    return names


def _compression(transfer_syntax: str) -> int:
    """Deflate native pixel data; compressed pixel data (JPEG, RLE, ...) would not shrink: store it."""
    try:
        compressed = UID(transfer_syntax).is_compressed
    except ValueError:  # not a transfer syntax pydicom knows: do not guess
        compressed = False
    return zipfile.ZIP_STORED if compressed else zipfile.ZIP_DEFLATED


class _Sink:
    """The archive's output: write-only and unseekable (zipfile then uses data descriptors)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        return None

    def take(self) -> bytes:
        data, self._chunks = b"".join(self._chunks), []
        return data


class _Member:
    """One stored file being copied into the archive, a chunk per call (each call in a worker thread)."""

    def __init__(self, archive: zipfile.ZipFile, path: Path, name: str, transfer_syntax: str) -> None:
        info = zipfile.ZipInfo.from_file(path, name)  # size and time from the stored file
        info.compress_type = _compression(transfer_syntax)
        # what ZipFile.write sets and open() with a ZipInfo does not (Python 3.13 names it compress_level)
        info._compresslevel = DEFLATE_LEVEL  # type: ignore[attr-defined]
        self._source: IO[bytes] = path.open("rb")
        try:
            self._target = archive.open(info, "w", force_zip64=info.file_size >= ZIP64_FROM)
        except BaseException:
            self._source.close()
            raise

    def copy_chunk(self) -> bool:
        """Copy the next chunk; True once the member is complete (its data descriptor written)."""
        data = self._source.read(CHUNK)
        if data:
            self._target.write(data)
            return False
        self._target.close()
        self._source.close()
        return True

    def abandon(self) -> None:
        self._source.close()


@dataclass(frozen=True)
class StudyArchive:
    """An archive whose instances were found and checked: its server-made file name and its bytes."""

    filename: str
    chunks: AsyncIterator[bytes]
    media_type: str = ZIP_MEDIA_TYPE


class StudyArchiveService:
    """Builds ZIP archives of what a principal may see, through the instance service's stored files."""

    def __init__(self, instances: InstanceService) -> None:
        self.instances = instances

    async def archive(
        self,
        principal: Principal,
        study: str,
        series: str | None = None,
        instance: str | None = None,
        transfer_syntax: str | None = None,
    ) -> StudyArchive:
        """Every visible instance of the study (or of one series or instance), as stored.

        ``transfer_syntax`` is what the client asked for (absent or ``*``: as stored); the files are
        not transcoded, so another syntax is 406 unless every instance is already stored in it.
        """
        level = "instance" if instance else "series" if series else "study"
        detail = {"dicomweb": "retrieve", "of": level, "as": "zip"}
        audit = self.instances.audit
        with audit.on_failure(principal, Action.DOWNLOAD, detail=detail):
            found = await self.instances.index.locate(principal, study, series, instance)
            if not found:
                raise FileNotFound(f"no {level} {(instance or series or study)[:64]} is stored")
            if transfer_syntax not in (None, "*") and any(i.transfer_syntax_uid != transfer_syntax for i in found):
                raise NotAcceptable(
                    "a ZIP holds the files as stored: ask for application/zip without a transfer-syntax, or with *"
                )
            first = await self.instances.stored_path(found[0].name)  # before the answer starts: a 4xx/5xx, not a cut
        audit.record(principal, Action.DOWNLOAD, study_instance_uid=study, detail=detail)
        return StudyArchive(f"{member_part(study)}.zip", self._stream(found, first))

    async def _path(self, item: Located) -> Path | None:
        """The stored file of an instance; None when it was deleted since the listing (then it is left out)."""
        try:
            return await self.instances.stored_path(item.name)
        except FileNotFound:
            return None

    async def _stream(self, found: list[Located], first: Path) -> AsyncIterator[bytes]:
        sink = _Sink()
        archive = zipfile.ZipFile(sink, "w", allowZip64=True)
        for position, (item, name) in enumerate(zip(found, member_names(found), strict=True)):
            path = first if position == 0 else await self._path(item)
            if path is None:
                continue
            member = await to_thread.run_sync(_Member, archive, path, name, item.transfer_syntax_uid)
            try:
                while not await to_thread.run_sync(member.copy_chunk):
                    if data := sink.take():  # deflate may hold a chunk back: send nothing rather than b""
                        yield data
            except BaseException:
                member.abandon()  # the client went away or a read failed: no central directory is written
                raise
            yield sink.take()
        await to_thread.run_sync(archive.close)
        yield sink.take()
