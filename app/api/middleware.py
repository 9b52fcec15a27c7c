"""The outermost layer of every HTTP request: request id, log context and request metrics.

It sits outside Starlette's ``ServerErrorMiddleware`` (see :class:`ObservedFastAPI`) so that even an
unexpected 500 carries ``X-Request-ID`` and is counted. Pure ASGI, no per-request task or copy of
the body: it only wraps ``send`` to see the status and add the header.

Starlette re-raises an unexpected error after its handler has answered 500, "so that servers can log
it". Ours (:mod:`app.api.errors`) already logged it, with the request's context and credentials
redacted; when that 500 was sent in full, the error stops here, so uvicorn neither logs a second,
context-free traceback nor drops the client's keep-alive connection (the client's next request on it
would fail with a reset).
"""

from __future__ import annotations

import logging
import os
import re
import time

import anyio
from fastapi import FastAPI
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.fast_tags import TagFastPath
from app.logging import HotLine, RequestContext, client_address, current_request, error_kind
from app.metrics import FinishedRequest, Metrics
from app.tracing import Tracing

log = logging.getLogger("lightbox.access")

REQUEST_ID_HEADER = b"x-request-id"
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,64}")


def request_id_from(scope: Scope) -> str:
    """The caller's X-Request-ID when it is short and plain (no log injection), else a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if VALID_REQUEST_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return os.urandom(16).hex()  # 128 random bits, as uuid4 but cheaper


class InFlight:
    """Requests of this process still running, so that shutdown can wait for their clean-up.

    When uvicorn's graceful shutdown times out it cancels the request tasks and then runs the
    lifespan shutdown; a cancelled upload still has to delete its staged file (in a thread).
    :meth:`drained` lets the lifespan wait for that instead of exiting under it.
    """

    def __init__(self) -> None:
        self.count = 0

    async def drained(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while self.count:
                await anyio.sleep(0.02)
        return self.count == 0


class RequestContextMiddleware:
    """Give each request an id, make it visible to every log line, measure it, and return the id."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state
        # The access line, one per request when its headers go out, under uvicorn's logger name as
        # before; written here so that it costs one line's work (see HotLine), whatever the server.
        self.access_line = HotLine("uvicorn.access", to_root=True)

    def _lifespan_send(self, send: Send) -> Send:
        """A start-up the lifespan refused on purpose is reported by the server as its one line, not a traceback."""

        async def send_refusal(message: Message) -> None:
            refusal = getattr(self.state, "startup_refusal", None)
            if message["type"] == "lifespan.startup.failed" and refusal:
                message = {**message, "message": refusal}
            await send(message)

        return send_refusal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(request_id_from(scope), scope["method"], scope)
        token = current_request.set(context)
        id_header = (REQUEST_ID_HEADER, context.request_id.encode("ascii"))
        answered = False

        async def send_with_id(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start":
                context.status = message["status"]
                headers = [h for h in message.get("headers", ()) if h[0].lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, id_header]}
                self.access_line.info(
                    f"{context.method} {context.route or '-'} {context.status}",
                    {"duration_ms": context.elapsed_ms(), "client": client_address(scope)},
                )
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                answered = True

        metrics: Metrics = self.state.metrics
        in_flight: InFlight = self.state.in_flight
        in_flight.count += 1
        metrics.request_started(in_flight.count)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            if not (answered and context.status == 500 and context.error == error_kind(exc)):
                raise  # not answered, or not by our handler: uvicorn logs it and ends the response
        finally:
            in_flight.count -= 1
            seconds = time.perf_counter() - context.started
            metrics.request_finished(
                in_flight.count,
                FinishedRequest(context.method, context.route, context.status, seconds, context.error),
                getattr(self.state, "caches", {}),
            )
            if context.status is None:
                log.info(
                    "request ended without a response (client gone or server stopping)",
                    extra={"duration_ms": round(seconds * 1000, 3)},
                )
            current_request.reset(token)


class ObservedFastAPI(FastAPI):
    """FastAPI with :class:`RequestContextMiddleware` outside every other layer, and the lean tag path
    (:class:`app.api.fast_tags.TagFastPath`) right inside it; when traced (:mod:`app.tracing`), the
    server span's middleware outside them all, so every log line of the request knows its trace."""

    def build_middleware_stack(self) -> ASGIApp:
        stack: ASGIApp = RequestContextMiddleware(TagFastPath(self, super().build_middleware_stack()), self.state)
        tracing: Tracing | None = getattr(self.state, "tracing", None)
        return stack if tracing is None else tracing.wrap_asgi(stack)  # the server span outside everything
