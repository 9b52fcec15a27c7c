"""A lean path for the hottest request: ``GET /dicomFile/{name}?tag=...`` whose answer is cached.

A tag lookup answered from the per-worker answer cache needs no I/O, yet FastAPI's routing,
dependency resolution and query validation cost ~10x the lookup itself. This layer sits just
inside :class:`app.api.middleware.RequestContextMiddleware` (so request id, metrics and the access
log line are unchanged) and answers only when *all* of these hold; anything else goes to FastAPI:

* ``GET`` on exactly ``/dicomFile/<one path segment>`` with no root path,
* the query string is exactly one ``tag`` parameter (parsed as Starlette parses it),
* no dependency override of the principal is installed, and the caller, resolved exactly as every
  other path resolves it (:func:`app.api.deps.resolve_principal`), may see everything (an
  administrator; single-user mode's local administrator): other callers' answers are never cached,
  so a revoked grant or share can never be answered from memory,
* :meth:`InstanceService.cached_attribute` has a trusted answer (same name and tag)
  and the audit trail can take its record (the service writes it, as for every lookup).

The body is built by :func:`app.api.routes.files.attribute_response`, the function the full route
uses, so the bytes and headers are identical; they are kept with the answer they were built from
(:class:`PreparedAnswers`) and sent as two ASGI messages, so a repeated lookup builds no response
object. A cache miss, a malformed tag, an unknown file and every error take the full path, which
also fills the cache.
"""

from __future__ import annotations

import functools
from urllib.parse import parse_qsl

from fastapi import FastAPI
from starlette.requests import HTTPConnection
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api.deps import get_principal, resolve_principal
from app.api.routes import files
from app.api.routes.files import attribute_response
from app.dicom.attributes import Attribute
from app.errors import LightboxError
from app.services.cache import LruCache

PREFIX = "/dicomFile/"
ROUTE_PATH = "/dicomFile/{name}"
MAX_NAME = 300  # as the route's NameParam
MAX_TAG = 200  # as the route's ``tag`` query parameter
MAX_TAG_QUERY = len(b"tag=") + 3 * MAX_TAG  # an ASCII tag with every character %-encoded; longer: the full route
PREPARED_ANSWERS = 4096

Prepared = tuple[Attribute, list[tuple[bytes, bytes]], bytes]  # (built from, headers, body)


@functools.lru_cache(maxsize=1024)
def _only_tag(query: bytes) -> str | None:
    """The ``tag`` value when the query string is exactly one ``tag`` parameter (parsed as Starlette
    parses it), else None. Remembered per query string (at most :data:`MAX_TAG_QUERY` bytes: the
    caller checks, so that no request makes it hold more): parsing was ~2 % of a cached lookup."""
    params = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    if len(params) != 1 or params[0][0] != "tag" or len(params[0][1]) > MAX_TAG:
        return None
    return params[0][1]


class PreparedAnswers:
    """The encoded answer per (name, tag as typed), reused while the answer cache returns the same
    :class:`Attribute` object (a refreshed or replaced answer is a new object, so it is encoded anew)."""

    def __init__(self, entries: int = PREPARED_ANSWERS) -> None:
        self._prepared: LruCache[tuple[str, str], Prepared] = LruCache(entries)

    def messages(self, name: str, tag: str, attribute: Attribute) -> tuple[list[tuple[bytes, bytes]], bytes]:
        prepared = self._prepared.peek((name, tag))
        if prepared is None or prepared[0] is not attribute:
            response = attribute_response(attribute, tag)
            prepared = (attribute, response.raw_headers, bytes(response.body))
            self._prepared.put((name, tag), prepared)
        return prepared[1], prepared[2]


class TagFastPath:
    """Answer cached tag lookups directly; pass every other request to ``app`` unchanged."""

    def __init__(self, fastapi: FastAPI, app: ASGIApp) -> None:
        self.fastapi = fastapi
        self.app = app
        self._route: BaseRoute | None = None
        self._prepared = PreparedAnswers()

    def _file_route(self) -> BaseRoute | None:
        """The ``GET /dicomFile/{name}`` route, put on the scope so logs and metrics name the template."""
        if self._route is None:
            for route in files.router.routes:  # the app's own list nests included routers
                if getattr(route, "path", None) == ROUTE_PATH and "GET" in (getattr(route, "methods", None) or ()):
                    self._route = route
                    break
        return self._route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            answer = await self._cached_answer(scope)
            if answer is not None:
                headers, body = answer
                await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _cached_answer(self, scope: Scope) -> tuple[list[tuple[bytes, bytes]], bytes] | None:
        path: str = scope["path"]
        if not path.startswith(PREFIX) or scope.get("root_path"):
            return None
        name = path[len(PREFIX) :]
        if not name or len(name) > MAX_NAME or "/" in name:
            return None
        query: bytes = scope["query_string"]
        if not query.startswith(b"tag=") or len(query) > MAX_TAG_QUERY:
            return None  # before the remembered parse: it holds only what could be one tag parameter
        tag = _only_tag(query)
        if tag is None:
            return None
        if get_principal in self.fastapi.dependency_overrides:
            return None
        instances = getattr(self.fastapi.state, "instances", None)
        route = self._file_route()
        if instances is None or route is None:
            return None
        try:
            principal = await resolve_principal(HTTPConnection(scope))
        except LightboxError:
            return None  # the full path answers the 401/403 (and counts it)
        scope["route"] = route  # before the lookup, so its audit log line names the route (routing sets it anyway)
        attribute = instances.cached_attribute(principal, name, tag)
        if attribute is None:
            return None
        return self._prepared.messages(name, tag, attribute)
