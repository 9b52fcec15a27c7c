"""What the DICOMweb routes share: path parameters, the base URL of links, Accept, multipart answers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Annotated

from anyio import to_thread
from fastapi import Path as PathParam
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from isal import igzip

from app.config import Settings
from app.dicom.negotiation import MediaRange, parse_accept
from app.errors import InvalidRequest

#: A UID as stored: digits and dots when conformant, but ingest keeps non-conformant UIDs as the opaque
#: identifiers they are (hex strings, over 64 characters: see app/dicom/identifiers.py), so a path takes
#: anything up to 256 characters without controls, backslash, slash or comma (the list separator).
UID_PATTERN = r"^[^\x00-\x1f\x7f\\/,]{1,256}$"
StudyUID = Annotated[str, PathParam(pattern=UID_PATTERN, max_length=256, description="Study Instance UID.")]
SeriesUID = Annotated[str, PathParam(pattern=UID_PATTERN, max_length=256, description="Series Instance UID.")]
FrameList = Annotated[
    str, PathParam(pattern=r"^[0-9]{1,9}(,[0-9]{1,9}){0,999}$", description="1-based frame numbers, e.g. 1,2,3.")
]
InstanceUID = Annotated[str, PathParam(pattern=UID_PATTERN, max_length=256, description="SOP Instance UID.")]
DICOM_JSON = "application/dicom+json"
CHUNK = 1 << 20
GZIP_MIN_BYTES = 4096  # below this, compressing costs more than the bytes it saves
GZIP_LEVEL = 1  # ISA-L level 1: DICOM JSON shrinks ~8x at a few ms per megabyte
DEFAULT_PORTS = {"http": 80, "https": 443}
STUDY_EXAMPLE = {
    "0020000D": {"vr": "UI", "Value": ["1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"]},
    "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
    "00080061": {"vr": "CS", "Value": ["CT"]},
}
BINARY = {"schema": {"type": "string", "format": "binary"}, "example": "(binary)"}
JSON_ARRAY = {"schema": {"type": "array", "items": {"type": "object"}}, "example": [STUDY_EXAMPLE]}


def base_url(request: Request, settings: Settings) -> str:
    """The DICOMweb root as clients reach it: ``LIGHTBOX_PUBLIC_URL`` (set it behind a proxy), else this
    request's scheme and host with the port the connection arrived on when the Host header has none
    (dicomweb-client sends ``Host`` without the port, which would make every link point to port 80)."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + settings.dicomweb_root
    url = request.url
    host = url.hostname or "localhost"
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    port = url.port
    server = request.scope.get("server")
    if port is None and server and server[1] not in (None, DEFAULT_PORTS.get(url.scheme)):
        port = int(server[1])
    authority = f"{host}:{port}" if port is not None else host
    return f"{url.scheme}://{authority}{request.scope.get('root_path', '')}{settings.dicomweb_root}"


def resource_url(request: Request, settings: Settings) -> str:
    """The URL of what this request names, for ``Content-Location`` (PS3.18 §8.4.3, §10.4.3.2: present when the
    payload is a resource): the base URL of :func:`base_url` and the path below the DICOMweb root, no query."""
    _, root, below = request.url.path.partition(settings.dicomweb_root + "/")
    return base_url(request, settings) + ("/" + below if root else "")


def location(request: Request, extra: dict[str, str] | None = None) -> dict[str, str]:
    """``extra`` headers and the ``Content-Location`` of this request's resource (settings as ``SettingsDep``
    reads them, for routes that need no other setting)."""
    settings: Settings = request.app.state.settings
    return {**(extra or {}), "Content-Location": resource_url(request, settings)}


def frame_numbers(text: str) -> list[int]:
    """The 1-based frame numbers of a ``{frames}`` path segment (PS3.18 §10.4.1.1.4)."""
    numbers = [int(part) for part in text.split(",")]
    if any(number < 1 for number in numbers):
        raise InvalidRequest("frame numbers start at 1")
    return numbers


def accepted(request: Request) -> list[MediaRange]:
    """The media ranges of the ``accept`` query parameter (PS3.18 8.3.3.1) or else the Accept header."""
    return parse_accept(request.query_params.get("accept") or request.headers.get("accept"))


def _part_head(boundary: str, media_type: str, length: int, url: str | None = None) -> bytes:
    """A part's headers; ``url`` is its ``Content-Location`` (PS3.18 §10.4.3.3: each part names its resource)."""
    where = f"Content-Location: {url}\r\n" if url else ""
    return f"--{boundary}\r\nContent-Type: {media_type}\r\n{where}Content-Length: {length}\r\n\r\n".encode()


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    """A stored file in chunks read off the event loop: a large instance is never held whole in memory."""
    handle = await to_thread.run_sync(path.open, "rb")
    try:
        while chunk := await to_thread.run_sync(handle.read, CHUNK):
            yield chunk
    finally:
        await to_thread.run_sync(handle.close)


async def _stream(boundary: str, parts: AsyncIterator[StreamedPart], base: str) -> AsyncIterator[bytes]:
    async for media_type, part, path in parts:
        url = base + path
        if isinstance(part, Path):
            size = (await to_thread.run_sync(part.stat)).st_size
            yield _part_head(boundary, media_type, size, url)
            async for chunk in _file_chunks(part):
                yield chunk
        else:
            yield _part_head(boundary, media_type, len(part), url)
            yield part
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


#: A streamed part: its media type, its bytes or stored file, and its resource's path below the base URL.
StreamedPart = tuple[str, bytes | Path, str]


def multipart_stream(
    part_type: str, parts: AsyncIterator[StreamedPart], base: str, headers: dict[str, str] | None = None
) -> StreamingResponse:
    """``multipart/related`` (RFC 2387) whose parts are produced as they are sent, each with its
    ``Content-Location`` (``base`` + its path)."""
    boundary = uuid.uuid4().hex
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return StreamingResponse(_stream(boundary, parts, base), media_type=content_type, headers=headers)


def multipart_body(parts: Iterable[tuple[str, bytes]], urls: Iterable[str | None] = ()) -> tuple[bytes, str]:
    """A whole ``multipart/related`` body of ``(media type, bytes)`` parts, and its Content-Type; ``urls`` are
    the parts' ``Content-Location`` values, in order (none when empty)."""
    items = list(parts)
    locations = list(urls) or [None] * len(items)
    boundary = uuid.uuid4().hex
    chunks: list[bytes] = []
    for (media_type, content), url in zip(items, locations, strict=True):
        chunks += [_part_head(boundary, media_type, len(content), url), content, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    part_type = items[0][0].split(";")[0] if items else "application/octet-stream"
    return b"".join(chunks), f'multipart/related; type="{part_type}"; boundary={boundary}'


def _accepts_gzip(request: Request) -> bool:
    for item in request.headers.get("accept-encoding", "").split(","):
        name, _, params = item.partition(";")
        if name.strip().lower() in ("gzip", "*") and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00"):
            return True
    return False


async def json_answer(request: Request, body: bytes, headers: dict[str, str] | None = None) -> Response:
    """``application/dicom+json``, gzip-compressed (off the event loop) when large and the client takes it."""
    headers = dict(headers or {})
    if len(body) >= GZIP_MIN_BYTES and _accepts_gzip(request):
        body = await to_thread.run_sync(igzip.compress, body, GZIP_LEVEL)
        headers |= {"Content-Encoding": "gzip", "Vary": "Accept-Encoding"}
    return Response(body, media_type=DICOM_JSON, headers=headers)
