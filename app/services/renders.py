"""Render stored instances to browser images, off the event loop, with a strong ETag and a bounded cache.

Stored files never change, so a render is fully identified by its inputs: file, frame, window,
size, format, quality (and the encoder settings). That key names both the ETag and the cache
entry, so a repeated view is a dictionary lookup. Every view is checked against what the caller
may see and recorded in the audit trail, a cached one and a "not modified" one included.

Renders run in worker threads: the header is parsed once and cached by :class:`InstanceService`,
and what remains (file read, decoders, numpy, Pillow resampling, ISA-L deflate) releases the GIL,
so threads use both cores without the pickling cost of processes (benchmarks/README.md).
Compressed pixel data is the exception: its decoders are native code, some of which abort the
process on a hostile stream, so those renders run in a :class:`DecodeSandbox` worker process.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import anyio
from anyio import to_thread
from pydicom.dataset import Dataset

from app.auth.principals import Principal
from app.config import Settings
from app.dicom.encode import encode_jpeg, encode_png, fit_within
from app.dicom.frames import decoded_frames
from app.dicom.image_pixel import frame_count
from app.dicom.ingest import read_header
from app.dicom.pixels import check_before_decoding, decode_frame, transfer_syntax, video_file
from app.dicom.render import Window, to_display
from app.dicom.transcode import to_explicit_little
from app.dicom.video import is_video
from app.errors import LightboxError, NotRenderable
from app.services.audit import Action
from app.services.cache import LruCache
from app.services.instances import InstanceService
from app.services.sandbox import DecodeSandbox
from app.tracing import set_span_attribute, span

T = TypeVar("T")
RENDERER_VERSION = "3"
CACHE_ENTRY_OVERHEAD = 512  # bytes of key and bookkeeping counted per cached render
log = logging.getLogger("lightbox.renders")


class ImageFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"


MEDIA_TYPES = {ImageFormat.PNG: "image/png", ImageFormat.JPEG: "image/jpeg"}


@dataclass(frozen=True)
class RenderRequest:
    """What to show: 1-based frame, optional window override, optional bounding size, format."""

    frame: int = 1
    window: Window | None = None
    size: int | None = None
    format: ImageFormat = ImageFormat.PNG
    quality: int | None = None  # JPEG only; None means the configured default


@dataclass(frozen=True)
class RenderedImage:
    content: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class RenderedVideo:
    """The stored video as a PS3.18 rendered media type (``video/mpeg`` or ``video/mp4``)."""

    content: bytes
    media_type: str


@dataclass(frozen=True)
class Encoding:
    """What a render needs from the settings (picklable, for worker processes)."""

    max_pixels: int
    png_compress_level: int
    jpeg_quality: int


def unexpected(exc: BaseException) -> NotRenderable:
    """The domain error for an exception the render path did not expect (pydicom, numpy, a codec, a bug).

    Only the exception's type is named: messages of pydicom and codecs can quote header values.
    """
    log.warning("rendering failed unexpectedly: %s", type(exc).__name__)
    log.debug("rendering failed unexpectedly", exc_info=exc)
    return NotRenderable(f"the image could not be rendered: the file's image data raised {type(exc).__name__}")


def render_file(path: Path, header: Dataset | None, request: RenderRequest, encoding: Encoding) -> bytes:
    """Decode one frame, apply the display pipeline, resize and encode (``header`` is read when None).

    Whatever goes wrong leaves as a :class:`LightboxError` (PS3.3 C.7.6.3 elements can hold anything).
    """
    try:
        return _render(path, header, request, encoding)
    except (LightboxError, KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        raise NotRenderable("the image could not be rendered within the service's memory limits") from None
    except Exception as exc:
        raise unexpected(exc) from None


def video_of(path: Path, header: Dataset | None, max_pixels: int) -> tuple[bytes, str]:
    """:func:`video_file` with the header read when None, every failure a :class:`LightboxError`."""
    try:
        return video_file(path, header if header is not None else read_header(path), max_pixels)
    except (LightboxError, KeyboardInterrupt, SystemExit):
        raise
    except MemoryError:
        raise NotRenderable("the video could not be served within the service's memory limits") from None
    except Exception as exc:
        raise unexpected(exc) from None


def _render(path: Path, header: Dataset | None, request: RenderRequest, encoding: Encoding) -> bytes:
    header = header if header is not None else read_header(path)
    index = request.frame - 1
    with span("render.decode", frame=request.frame):
        stored = decode_frame(path, header, index, encoding.max_pixels)
    with span("render.window", custom_window=request.window is not None):
        image = to_display(stored, header, index, request.window)
    with span("render.encode", format=request.format.value, size=request.size or 0):
        if request.size is not None:
            image = fit_within(image, request.size)
        if request.format is ImageFormat.JPEG:
            return encode_jpeg(image, request.quality or encoding.jpeg_quality)
        return encode_png(image, encoding.png_compress_level)


class RenderService:
    """Decode one frame, apply the display pipeline, resize, encode; the stored file is never modified."""

    def __init__(
        self, settings: Settings, instances: InstanceService, on_sandbox_replaced: Callable[[str], None] | None = None
    ) -> None:
        self.settings = settings
        self.instances = instances
        self._slots = anyio.CapacityLimiter(settings.render_threads)
        self._encoding = Encoding(settings.max_pixels, settings.png_compress_level, settings.jpeg_quality)
        self._sandbox = (
            DecodeSandbox(settings.render_threads, settings.decode_timeout_seconds, on_sandbox_replaced)
            if settings.isolate_decoders
            else None
        )
        self.cache: LruCache[str, RenderedImage] = LruCache(
            max_entries=1 << 20,
            max_cost=settings.render_cache_bytes,
            cost=lambda image: len(image.content) + CACHE_ENTRY_OVERHEAD,
        )

    def _key(self, name: str, request: RenderRequest) -> str:
        window = f"{request.window.center!r},{request.window.width!r}" if request.window else "file"
        if request.format is ImageFormat.JPEG:
            encoding = f"jpeg{request.quality or self.settings.jpeg_quality}"
        else:
            encoding = f"png{self.settings.png_compress_level}"
        size = request.size or "full"
        return f"{RENDERER_VERSION}|{name}|{request.frame}|{window}|{size}|{encoding}"

    def etag(self, name: str, request: RenderRequest) -> str:
        """A strong validator derived from every input of the render."""
        return '"' + hashlib.sha256(self._key(name, request).encode()).hexdigest()[:32] + '"'

    @staticmethod
    def _detail(request: RenderRequest) -> dict[str, str | int]:
        return {"frame": request.frame, "format": request.format.value}

    async def not_modified(self, principal: Principal, name: str, request: RenderRequest) -> None:
        """The caller already holds this render (its ETag matched): check it may see it, record the view."""
        audit = self.instances.audit
        with audit.on_failure(principal, Action.RENDER, name=name, detail=self._detail(request)):
            study = await self.instances.index.study_uid(principal, name)
        detail = {**self._detail(request), "not_modified": True}
        audit.record(principal, Action.RENDER, study_instance_uid=study, name=name, detail=detail)

    async def render(
        self, principal: Principal, name: str, request: RenderRequest, study: str | None = None
    ) -> RenderedImage:
        """The cached render when there is one, else a fresh render; FileNotFound when not visible.

        ``study``: the file's Study Instance UID when the caller found it by UIDs for ``principal``
        in this request (DICOMweb's locate, a query that already applied visibility): the index
        is then not asked a second time.
        """
        audit = self.instances.audit
        with audit.on_failure(principal, Action.RENDER, name=name, detail=self._detail(request)):
            if study is None:
                study = await self.instances.index.study_uid(principal, name)
            with span("render", frame=request.frame, format=request.format.value) as current:
                image = await self._cached_render(name, request)
                if current is not None:
                    current.set_attribute("lightbox.bytes", len(image.content))
        audit.record(principal, Action.RENDER, study_instance_uid=study, name=name, detail=self._detail(request))
        return image

    async def _cached_render(self, name: str, request: RenderRequest) -> RenderedImage:
        key = self._key(name, request)
        cached = self.cache.get(key)
        set_span_attribute("cache_hit", cached is not None)
        if cached is not None:
            return cached
        try:
            path, header = await self.instances.stored_header(name)
            async with self._slots:
                content = await self._draw(path, header, request)
        except LightboxError:
            raise
        except Exception as exc:  # a header pydicom cannot parse, an exception a worker could not send back
            raise unexpected(exc) from None
        image = RenderedImage(content, MEDIA_TYPES[request.format], self.etag(name, request))
        self.cache.put(key, image)
        return image

    async def video(self, principal: Principal, name: str) -> RenderedVideo:
        """The video of a stored file of a video transfer syntax (PS3.5 8.2.5-8.2.7), playable by a browser.

        MPEG-2 as its stored elementary stream, H.264 and HEVC remuxed into MP4 without re-encoding
        (:mod:`app.dicom.video_media`), in the decode sandbox. A file of another syntax is NotRenderable.
        Not cached: videos are large and a client fetches one once.
        """
        audit = self.instances.audit
        with audit.on_failure(principal, Action.DOWNLOAD, name=name, detail={"video": True}):
            study = await self.instances.index.study_uid(principal, name)
            video = await self._video(name)
        audit.record(principal, Action.DOWNLOAD, study_instance_uid=study, name=name, detail={"video": True})
        return video

    async def _video(self, name: str) -> RenderedVideo:
        try:
            path, header = await self.instances.stored_header(name)
            syntax = transfer_syntax(header)
            if not is_video(syntax):
                raise NotRenderable(f"this file holds no video: its transfer syntax is {syntax.name}")
            async with self._slots:
                if self._sandbox is not None:
                    content, media_type = await self._sandbox.run(video_of, path, None, self._encoding.max_pixels)
                else:
                    content, media_type = await to_thread.run_sync(video_of, path, header, self._encoding.max_pixels)
        except LightboxError:
            raise
        except Exception as exc:
            raise unexpected(exc) from None
        return RenderedVideo(content, media_type)

    async def _draw(self, path: Path, header: Dataset, request: RenderRequest) -> bytes:
        syntax = transfer_syntax(header)
        if self._sandbox is not None and syntax.is_transfer_syntax and syntax.is_compressed:
            # bombs, unknown syntaxes and bad headers are answered here, without a worker process
            await to_thread.run_sync(check_before_decoding, path, header, request.frame - 1, self._encoding.max_pixels)
            # codec decoders are native code that can abort on a hostile stream: decode in a worker process
            return await self._sandbox.run(render_file, path, None, request, self._encoding)
        return await to_thread.run_sync(render_file, path, header, request, self._encoding)

    async def explicit_little(self, name: str) -> bytes:
        """The stored file in Explicit VR Little Endian (WADO-RS retrieve, C-GET/C-MOVE to a peer that does
        not accept the stored syntax): the codec stream headers of every frame are checked first, as for
        ``?png`` (bombs), then compressed pixel data is decoded in the sandbox."""
        path, header = await self.instances.stored_header(name)
        compressed = transfer_syntax(header).is_compressed
        if compressed:
            await self._check_frames(path, header, None)
        return await self.run_decoder(compressed, to_explicit_little, path, self._encoding.max_pixels)

    async def decoded_frames(self, name: str, numbers: list[int]) -> list[bytes]:
        """Frames ``numbers`` (1-based) decoded to native bytes (WADO-RS frames), stream headers checked first."""
        path, header = await self.instances.stored_header(name)
        await self._check_frames(path, header, [number - 1 for number in numbers])
        return await self.run_decoder(True, decoded_frames, path, numbers, self._encoding.max_pixels)

    async def _check_frames(self, path: Path, header: Dataset, indexes: list[int] | None) -> None:
        """:func:`check_before_decoding` for ``indexes`` (None: every frame the header declares), off the loop."""

        def check() -> None:
            for index in range(frame_count(header)) if indexes is None else indexes:
                check_before_decoding(path, header, index, self._encoding.max_pixels)

        await to_thread.run_sync(check)

    async def run_decoder(self, compressed: bool, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` within the render slots: in the decode sandbox when it decodes compressed data."""
        async with self._slots:
            if self._sandbox is not None and compressed:
                return await self._sandbox.run(function, *args)
            return await to_thread.run_sync(function, *args)

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
