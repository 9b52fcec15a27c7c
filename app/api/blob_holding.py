"""Each HTTP request holds the blob-cache copies it reads until its response is sent.

With an object store, downloads, renders and DICOMweb retrieves read a local copy by path, often
after the path was handed out (a streamed response opens it when it starts sending, a sandbox
process when its turn comes). :func:`app.storage.blob_cache.holding` pins those copies, so a cache
budget smaller than what concurrent requests read at once never removes a copy before it is opened.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from app.storage.blob_cache import holding


class HoldBlobs:
    """ASGI middleware: the request, response included, runs inside one :func:`holding` block."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with holding():
            await self.app(scope, receive, send)
