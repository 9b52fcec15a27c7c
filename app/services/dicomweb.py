"""DICOMweb use cases (PS3.18): search, retrieve, metadata, frames, bulk data, renders, WADO-URI.

Everything is found through the index with the caller's principal (what they may not see is
absent: 404), read from the blob store, and decoded in the decode sandbox when native codecs
are involved. Independent of HTTP: the routes pass parsed requests and a base URL for links.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from anyio import to_thread
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from app.auth.principals import Principal
from app.config import Settings
from app.dicom.frames import EXPLICIT_LITTLE, OCTET_STREAM, Frame, stored_frames
from app.dicom.header_json import PIXEL_TAGS
from app.dicom.negotiation import FrameEncoding, MediaRange, frame_encoding
from app.dicom.qido import SearchQuery
from app.dicom.qido_result import result_json, retrieve_url
from app.dicom.video import VIDEO_SYNTAXES, is_video
from app.dicom.wado_metadata import metadata_json
from app.errors import FileNotFound, NotAcceptable, NotRenderable
from app.index.base import Located
from app.services.audit import Action, Detail
from app.services.cache import LruCache
from app.services.instances import InstanceService
from app.services.renders import RenderedImage, RenderedVideo, RenderRequest, RenderService

#: Stands for the base URL in cached metadata (JSON-safe, replaced by the request's base URL when sent).
BASE_PLACEHOLDER = "lightbox-base-url:"


@dataclass(frozen=True)
class Target:
    """What a WADO request names: a study, a series of it, or one instance of that series."""

    study: str
    series: str | None = None
    instance: str | None = None

    @property
    def level(self) -> str:
        return "instance" if self.instance else "series" if self.series else "study"

    def describe(self) -> str:
        if self.instance:
            return f"instance {self.instance[:64]}"
        if self.series:
            return f"series {self.series[:64]}"
        return f"study {self.study[:64]}"


#: One part of a retrieve: its media type (with the transfer syntax it is in), its bytes or stored file, and
#: the instance's path below the DICOMweb base URL (``/studies/{s}/series/{r}/instances/{i}``, PS3.18 §10.4.1).
Part = tuple[str, bytes | Path, str]


@dataclass(frozen=True)
class Retrieval:
    """A retrieve whose instances were found and checked; its parts are produced as they are sent."""

    parts: AsyncIterator[Part]  # a stored file is sent from its path, in chunks


def _is_compressed(syntax: str) -> bool:
    return UID(syntax).is_compressed


def _decodable(syntax: str) -> bool:
    try:
        decoder = get_decoder(UID(syntax))
    except (NotImplementedError, ValueError):
        return False
    return bool(decoder.is_available)


class DicomWebService:
    """The DICOMweb use cases over the instance and render services."""

    def __init__(self, settings: Settings, instances: InstanceService, renders: RenderService) -> None:
        self.settings = settings
        self.instances = instances
        self.renders = renders
        self.index = instances.index
        # stored name -> its metadata JSON with BASE_PLACEHOLDER for the base URL (names are never reused)
        self._metadata: LruCache[str, str] = LruCache(1 << 20, settings.metadata_cache_bytes, len)
        self.metadata_cache = self._metadata  # read-only view for metrics (hits/misses)

    @contextmanager
    def _audited(self, principal: Principal, action: Action, study: str | None, detail: Detail) -> Iterator[None]:
        """One audit record per DICOMweb request (rule 9): the failure if the body raises, else success."""
        with self.instances.audit.on_failure(principal, action, detail=detail):
            yield
        self.instances.audit.record(principal, action, study_instance_uid=study, detail=detail)

    async def _locate(self, principal: Principal, target: Target, headers: bool = False) -> list[Located]:
        found = await self.index.locate(principal, target.study, target.series, target.instance, headers)
        if not found:
            raise FileNotFound(f"no {target.describe()} is stored")
        return found

    # -- QIDO-RS ------------------------------------------------------------------------------
    async def search(self, principal: Principal, query: SearchQuery, base_url: str) -> bytes:
        """QIDO-RS (PS3.18 §10.6): the matching results as an ``application/dicom+json`` array."""
        with self._audited(principal, Action.LIST, query.study_uid, {"dicomweb": "search", "level": str(query.level)}):
            rows = await self.index.search(principal, query)

            def shape() -> bytes:
                results = [
                    result_json(
                        query,
                        row.header,
                        base_url,
                        (row.study_instance_uid, row.series_instance_uid, row.sop_instance_uid),
                        row.modalities_in_study,
                        row.related_series,
                        row.related_instances,
                    )
                    for row in rows
                ]
                return json.dumps(results, separators=(",", ":")).encode()

            return await to_thread.run_sync(shape)

    # -- WADO-RS ------------------------------------------------------------------------------
    async def retrieve(self, principal: Principal, target: Target, syntax: str) -> Retrieval:
        """Instances as ``application/dicom`` parts (PS3.18 §10.4.1.1.1): as stored (``*``) or transcoded."""
        with self._audited(principal, Action.DOWNLOAD, target.study, {"dicomweb": "retrieve", "of": target.level}):
            found = await self._locate(principal, target)
            as_stored = [item.transfer_syntax_uid in (syntax, "*") or syntax == "*" for item in found]
            if syntax not in ("*", EXPLICIT_LITTLE) and not all(as_stored):
                raise NotAcceptable(
                    f"the instances cannot be sent in transfer syntax {syntax[:64]}: use * or the default"
                )
            for item, kept in zip(found, as_stored, strict=True):
                if not kept and _is_compressed(item.transfer_syntax_uid) and not _decodable(item.transfer_syntax_uid):
                    raise NotAcceptable(
                        f"an instance is stored in {item.transfer_syntax_uid} and cannot be decoded here: "
                        "ask for transfer-syntax=* to receive it as stored"
                    )
            first = await self._instance_part(found[0], as_stored[0])  # before the answer starts: its error is a 4xx
            return Retrieval(self._instance_parts(first, found[1:], as_stored[1:]))

    async def _instance_parts(self, first: Part, found: list[Located], as_stored: list[bool]) -> AsyncIterator[Part]:
        """One part per instance: the stored file itself (sent in chunks), or its transcoded bytes."""
        yield first
        for item, kept in zip(found, as_stored, strict=True):
            yield await self._instance_part(item, kept)

    async def _instance_part(self, item: Located, kept: bool) -> Part:
        path = retrieve_url("", item.study_instance_uid, item.series_instance_uid, item.sop_instance_uid)
        if kept or item.transfer_syntax_uid == EXPLICIT_LITTLE:
            stored = await self.instances.stored_path(item.name)
            return f"application/dicom; transfer-syntax={item.transfer_syntax_uid}", stored, path
        try:
            data = await self.renders.explicit_little(item.name)
            return f"application/dicom; transfer-syntax={EXPLICIT_LITTLE}", data, path
        except NotRenderable as exc:  # the requested syntax cannot be produced (PS3.18 8.7.3.5.2)
            raise NotAcceptable(f"{exc.message}; ask for transfer-syntax=* to receive it as stored") from None

    async def metadata(self, principal: Principal, target: Target, base_url: str) -> bytes:
        """Metadata (PS3.18 §10.4.1.1.2): every instance's header, bulk values as resolvable BulkDataURIs.

        The index decides which instances the principal sees; each one's JSON (stored headers never
        change) is kept in a bounded cache with a placeholder for the base URL, so a viewer opening a
        series again costs a join of strings.
        """
        with self._audited(principal, Action.METADATA, target.study, {"dicomweb": "metadata", "of": target.level}):
            found = await self._locate(principal, target)
            texts = [self._metadata.get(item.name) for item in found]
            if any(text is None for text in texts):
                with_headers = await self._locate(principal, target, headers=True)
                texts = await to_thread.run_sync(self._metadata_texts, with_headers)

            def join() -> bytes:
                return ("[" + ",".join(text or "" for text in texts) + "]").replace(BASE_PLACEHOLDER, base_url).encode()

            return await to_thread.run_sync(join)

    def _metadata_texts(self, found: list[Located]) -> list[str | None]:
        texts: list[str | None] = []
        for item in found:
            text = self._metadata.peek(item.name)  # the hit or miss was counted by metadata()
            if text is None:
                assert item.header is not None
                ids = (item.study_instance_uid, item.series_instance_uid, item.sop_instance_uid)
                url = retrieve_url(BASE_PLACEHOLDER, *ids)
                text = json.dumps(metadata_json(item.header, url), separators=(",", ":"))
                self._metadata.put(item.name, text)
            texts.append(text)
        return texts

    async def frames(
        self, principal: Principal, target: Target, numbers: list[int], accept: list[MediaRange]
    ) -> list[Frame]:
        """Frames of one instance (PS3.18 §10.4.1.1.4), as stored or decoded as the client accepts."""
        with self._audited(principal, Action.DOWNLOAD, target.study, {"dicomweb": "frames", "frames": len(numbers)}):
            (item,) = (await self._locate(principal, target))[:1]
            encoding = frame_encoding(accept, item.transfer_syntax_uid)
            if encoding is FrameEncoding.DECODED:
                if not _decodable(item.transfer_syntax_uid):
                    raise NotAcceptable(f"frames stored in {item.transfer_syntax_uid} cannot be decoded here")
                decoded = await self.renders.decoded_frames(item.name, numbers)
                return [Frame(data, OCTET_STREAM, EXPLICIT_LITTLE) for data in decoded]
            path, header = await self.instances.stored_header(item.name)
            frames = await to_thread.run_sync(stored_frames, path, header, numbers, self.settings.max_pixels)
            if encoding is FrameEncoding.STORED_AS_OCTETS:
                return [Frame(frame.content, OCTET_STREAM, frame.transfer_syntax) for frame in frames]
            return frames

    async def bulkdata(self, principal: Principal, target: Target, tag: int) -> list[Frame]:
        """A bulk value (PS3.18 §10.4.1.1.5): Pixel Data as its frames as stored, others as octets."""
        with self._audited(principal, Action.DOWNLOAD, target.study, {"dicomweb": "bulkdata", "tag": f"{tag:08X}"}):
            (item,) = (await self._locate(principal, target))[:1]
            path, header = await self.instances.stored_header(item.name)
            if tag in PIXEL_TAGS:  # encapsulated: one part per frame; native: the whole value, little endian
                count = max(int(item.number_of_frames or 1), 1)
                frames = await to_thread.run_sync(
                    stored_frames, path, header, list(range(1, count + 1)), self.settings.max_pixels
                )
                if _is_compressed(item.transfer_syntax_uid):
                    return frames
                return [Frame(b"".join(frame.content for frame in frames), OCTET_STREAM, EXPLICIT_LITTLE)]

            def value() -> bytes:
                if tag not in header:
                    raise FileNotFound(f"the instance has no element ({tag >> 16:04X},{tag & 0xFFFF:04X})")
                data: Any = header[tag].value
                if not isinstance(data, bytes | bytearray):
                    raise FileNotFound("only binary elements are served as bulk data")
                return bytes(data)

            return [Frame(await to_thread.run_sync(value), OCTET_STREAM, EXPLICIT_LITTLE)]

    async def rendered(self, principal: Principal, target: Target, request: RenderRequest) -> RenderedImage:
        """A rendered instance or frame (PS3.18 §10.4.1.1.3); for a study or series, its first instance."""
        item = (await self._locate(principal, target))[0]
        return await self.renders.render(principal, item.name, request, item.study_instance_uid)

    async def rendered_video(self, principal: Principal, target: Target, ranges: list[MediaRange]) -> RenderedVideo:
        """A video instance as its rendered media type (PS3.18 §8.7.4: ``video/mpeg`` for MPEG-2,
        ``video/mp4`` for H.264 and HEVC), when the client asks for video."""
        item = (await self._locate(principal, target))[0]
        syntax = item.transfer_syntax_uid
        if not is_video(syntax):
            raise NotAcceptable("this instance holds no video: ask for image/jpeg or image/png")
        media_type = VIDEO_SYNTAXES[syntax].media_type
        if not any(media.accepts(media_type) for media in ranges):
            raise NotAcceptable(f"this video is served as {media_type}")
        return await self.renders.video(principal, item.name)

    async def rendered_all(self, principal: Principal, target: Target, request: RenderRequest) -> list[RenderedImage]:
        """A rendered study or series (PS3.18 §10.4.1.1.3): each instance's frame rendered, in series order."""
        found = await self._locate(principal, target)
        return [await self.renders.render(principal, item.name, request, item.study_instance_uid) for item in found]

    async def stored_file(self, principal: Principal, target: Target) -> Path:
        """The stored file of one instance, byte for byte (WADO-URI ``application/dicom``, PS3.18 §9)."""
        with self._audited(principal, Action.DOWNLOAD, target.study, {"dicomweb": "wado-uri"}):
            item = (await self._locate(principal, target))[0]
            return await self.instances.stored_path(item.name)
