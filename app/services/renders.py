"""Render stored instances to browser images, off the event loop, with a strong ETag and a bounded cache.

Stored files never change, so a render is fully identified by its inputs: file, frame, window,
size, format, quality (and the encoder settings). That key names both the ETag and the cache
entry, so a repeated view is a dictionary lookup.

Renders run in worker threads: the header is parsed once and cached by :class:`InstanceService`,
and what remains (file read, decoders, numpy, Pillow resampling, ISA-L deflate) releases the GIL,
so threads use both cores without the pickling cost of processes (benchmarks/README.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

import anyio
from anyio import to_thread

from app.config import Settings
from app.dicom.encode import encode_jpeg, encode_png, fit_within
from app.dicom.pixels import decode_frame
from app.dicom.render import Window, to_display
from app.services.cache import LruCache
from app.services.instances import InstanceService

RENDERER_VERSION = "2"
CACHE_ENTRY_OVERHEAD = 512  # bytes of key and bookkeeping counted per cached render


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


class RenderService:
    """Decode one frame, apply the display pipeline, resize, encode; the stored file is never modified."""

    def __init__(self, settings: Settings, instances: InstanceService) -> None:
        self.settings = settings
        self.instances = instances
        self._slots = anyio.CapacityLimiter(settings.render_threads)
        self._cache: LruCache[str, RenderedImage] = LruCache(
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

    def _render_blocking(self, name: str, request: RenderRequest) -> RenderedImage:
        path, header = self.instances.header_blocking(name)
        index = request.frame - 1
        stored = decode_frame(path, header, index, self.settings.max_pixels)
        image = to_display(stored, header, index, request.window)
        if request.size is not None:
            image = fit_within(image, request.size)
        if request.format is ImageFormat.JPEG:
            content = encode_jpeg(image, request.quality or self.settings.jpeg_quality)
        else:
            content = encode_png(image, self.settings.png_compress_level)
        return RenderedImage(content, MEDIA_TYPES[request.format], self.etag(name, request))

    async def render(self, name: str, request: RenderRequest) -> RenderedImage:
        """The cached render when there is one, else a fresh render in a worker thread."""
        key = self._key(name, request)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        image = await to_thread.run_sync(self._render_blocking, name, request, limiter=self._slots)
        self._cache.put(key, image)
        return image
