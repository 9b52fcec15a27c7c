"""One socket write per small response instead of two: uvicorn's HTTP protocol with coalesced writes.

uvicorn writes a response's status line and headers when the app sends ``http.response.start`` and
its body when the app sends ``http.response.body``: two ``write`` system calls for every response,
each of which (on loopback, with a client waiting) wakes the client. For a cached tag lookup the
second call is a fifth of the request's CPU. :class:`CoalescingTransport` holds the small writes
made during one turn of the event loop and hands them to the socket together at the end of the
turn, so a head and a body sent back to back leave in one write; a write of ``LARGE_WRITE`` bytes
or more (file downloads, renders) goes out at once, after anything held before it, so large
bodies are neither copied nor delayed. ``close`` sends what is held first; ``abort`` drops it.

``lightbox`` runs its workers with :class:`CoalescingHttpToolsProtocol` (uvicorn's ``http=`` option
takes a protocol class); ``uvicorn app.main:app`` keeps uvicorn's own.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

LARGE_WRITE = 64 * 1024


class CoalescingTransport:
    """Wraps an asyncio transport: writes of one loop turn go to the socket as one (see module doc)."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._held_bytes = 0
        self._flush_scheduled = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if len(data) >= LARGE_WRITE:
            self.flush()
            self._transport.write(data)
            return
        self._held.append(bytes(data))
        self._held_bytes += len(data)
        if self._held_bytes >= LARGE_WRITE:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what is held now (called at the end of the loop turn, or before a large write or close)."""
        self._flush_scheduled = False
        if not self._held:
            return
        data = self._held[0] if len(self._held) == 1 else b"".join(self._held)
        self._held.clear()
        self._held_bytes = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._held.clear()
        self._held_bytes = 0
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._held_bytes + self._transport.get_write_buffer_size()

    def __getattr__(self, name: str) -> Any:  # everything else (is_closing, pause_reading, ...) as is
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol writing through a :class:`CoalescingTransport`."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        # (uvloop's transports are not asyncio.Transport subclasses, only alike)
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]
