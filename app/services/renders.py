"""Render stored instances to browser images, off the event loop, with a strong ETag per render."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import anyio
from anyio import to_thread

from app.config import Settings
from app.dicom.encode import encode_png
from app.dicom.pixels import decode_frame
from app.dicom.render import Window, to_display
from app.services.instances import InstanceService

RENDERER_VERSION = "1"


@dataclass(frozen=True)
class RenderRequest:
    frame: int = 1
    window: Window | None = None


@dataclass(frozen=True)
class RenderedImage:
    content: bytes
    media_type: str
    etag: str


class RenderService:
    """Decode one frame, apply the display pipeline, encode; the stored file is never modified."""

    def __init__(self, settings: Settings, instances: InstanceService) -> None:
        self.settings = settings
        self.instances = instances
        self._slots = anyio.CapacityLimiter(settings.render_threads)

    def etag(self, name: str, request: RenderRequest) -> str:
        """Stored files never change, so a render is identified by its inputs alone."""
        window = f"{request.window.center},{request.window.width}" if request.window else "file"
        key = f"{name}|{request.frame}|{window}|png{self.settings.png_compress_level}|{RENDERER_VERSION}"
        return '"' + hashlib.sha256(key.encode()).hexdigest()[:32] + '"'

    def _render_blocking(self, name: str, request: RenderRequest) -> RenderedImage:
        path, header = self.instances.header_blocking(name)
        index = request.frame - 1
        stored = decode_frame(path, header, index, self.settings.max_pixels)
        image = to_display(stored, header, index, request.window)
        content = encode_png(image, self.settings.png_compress_level)
        return RenderedImage(content, "image/png", self.etag(name, request))

    async def render(self, name: str, request: RenderRequest) -> RenderedImage:
        return await to_thread.run_sync(self._render_blocking, name, request, limiter=self._slots)
