"""Stream a multipart/form-data body part by part, never holding a file in memory.

python-multipart parses push-style; this adapter turns its callbacks into an async
sequence of events (part start with headers, data chunks, part end) that a route can
drive an upload with, while enforcing body-size, part-count and header limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import anyio
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from app.errors import InvalidRequest, UploadTimedOut, UploadTooLarge

MAX_PARTS = 1000


@dataclass
class PartStart:
    field_name: str
    filename: str | None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class PartData:
    data: bytes


@dataclass
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(request: Request, kind: bytes = b"multipart/form-data") -> bytes:
    """The boundary of a ``kind`` body (quoted or not); the caller has checked the media type for other kinds."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != kind:
        raise InvalidRequest("send the file as multipart/form-data in a field named 'file'")
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise InvalidRequest(f"the {kind.decode()} body has no valid boundary")
    return boundary


def check_declared_size(request: Request, limit: int) -> None:
    """Answer 413 before reading anything when Content-Length already exceeds the limit."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise InvalidRequest("Content-Length is not a number") from None
        if size > limit:
            raise UploadTooLarge(f"the upload is {size} bytes, more than the limit of {limit} bytes")


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class _Collector:
    """Receives python-multipart callbacks and queues events."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.parts = 0
        self._field = bytearray()
        self._value = bytearray()
        self._headers: dict[str, bytes] = {}

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise InvalidRequest(f"the request has more than {MAX_PARTS} parts")
        self._headers = {}

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[_decode(bytes(self._field)).strip().lower()] = bytes(self._value).strip()
        self._field.clear()
        self._value.clear()

    def on_headers_finished(self) -> None:
        _disposition, params = parse_options_header(self._headers.get("content-disposition", b""))
        name = _decode(params.get(b"name", b""))
        filename = params.get(b"filename")
        headers = {key: _decode(value) for key, value in self._headers.items()}
        self.events.append(PartStart(name, _decode(filename) if filename is not None else None, headers))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self.events.append(PartData(bytes(data[start:end])))

    def on_part_end(self) -> None:
        self.events.append(PartEnd())


async def _chunks(request: Request, read_timeout: float) -> AsyncIterator[bytes]:
    """The body's chunks; a client that sends nothing for ``read_timeout`` seconds is cut off."""
    stream = request.stream().__aiter__()
    while True:
        try:
            with anyio.fail_after(read_timeout):
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTimedOut(
                f"no data arrived for {read_timeout:g} s: the upload was stopped and nothing was kept"
            ) from None
        yield chunk


async def iter_events(
    request: Request, max_body: int, read_timeout: float, kind: bytes = b"multipart/form-data"
) -> AsyncIterator[Event]:
    """Yield the parts of the body as events; raise domain errors for malformed, stalled or oversized bodies.

    ``kind`` is ``multipart/form-data`` (``POST /upload``) or ``multipart/related`` (STOW-RS, RFC 2387)."""
    collector = _Collector()
    parser = MultipartParser(
        boundary_of(request, kind),
        {
            "on_part_begin": collector.on_part_begin,
            "on_header_field": collector.on_header_field,
            "on_header_value": collector.on_header_value,
            "on_header_end": collector.on_header_end,
            "on_headers_finished": collector.on_headers_finished,
            "on_part_data": collector.on_part_data,
            "on_part_end": collector.on_part_end,
        },
        max_header_count=16,
    )
    received = 0
    try:
        async for chunk in _chunks(request, read_timeout):
            received += len(chunk)
            if received > max_body:
                raise UploadTooLarge(f"the upload is larger than the limit of {max_body} bytes")
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise InvalidRequest(f"the {kind.decode()} body is malformed: {exc}") from None
            for event in collector.events:
                yield event
            collector.events.clear()
    except ClientDisconnect:
        raise InvalidRequest("the client closed the connection before the upload was complete") from None
    try:
        parser.finalize()
    except MultipartParseError as exc:
        raise InvalidRequest(f"the {kind.decode()} body is malformed: {exc}") from None
