"""Per-RPC request context, access line and metrics: what :mod:`app.api.middleware` does for HTTP.

The request id comes from ``x-request-id`` metadata when it is short and plain (else a new one) and
goes back in the trailing metadata; the context makes log lines and audit records carry it, the
method (``GRPC``), the route (``/lightbox.v1.Lightbox/Upload``) and the client's address.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.datastructures import State

from app.api.middleware import VALID_REQUEST_ID
from app.logging import RequestContext, current_request
from app.storage.blob_cache import holding

log = logging.getLogger("lightbox.grpc.access")

METHOD = "GRPC"
SERVICE_PATH = "/lightbox.v1.Lightbox/"


@dataclass(frozen=True)
class _Route:
    path: str  # what RequestContext.route reads, as from a Starlette route


@dataclass
class Call:
    """One RPC being served; ``code`` is set when it fails."""

    context: RequestContext
    code: grpc.StatusCode = grpc.StatusCode.OK


def _request_id(metadata: dict[str, Any]) -> str:
    given = metadata.get("x-request-id")
    if isinstance(given, str) and VALID_REQUEST_ID.fullmatch(given.encode("ascii", "replace")):
        return given
    return os.urandom(16).hex()


def peer_address(context: grpc.aio.ServicerContext) -> str | None:
    """``ipv4:127.0.0.1:5432`` or ``ipv6:[::1]:5432`` -> the address alone (audit, login throttling)."""
    peer = context.peer() or ""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rpartition(":")[0] or None
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]") or None
    return None


@contextlib.asynccontextmanager
async def observed(state: State, context: grpc.aio.ServicerContext, rpc: str) -> AsyncIterator[Call]:
    """Around one RPC: the request context, then one access line and the RPC metrics."""
    metadata = dict(context.invocation_metadata() or ())
    client = peer_address(context)
    scope: dict[str, Any] = {"route": _Route(SERVICE_PATH + rpc), "client": (client, 0) if client else None}
    call = Call(RequestContext(_request_id(metadata), METHOD, scope))
    token = current_request.set(call.context)
    context.set_trailing_metadata((("x-request-id", call.context.request_id),))
    try:
        with holding():  # blob-cache copies the RPC reads by path stay until it ends (a download reopens its file)
            yield call
    except BaseException as exc:
        if call.code is grpc.StatusCode.OK:  # not ours: a cancelled call, or abort's own exception
            call.code = grpc.StatusCode.CANCELLED if not isinstance(exc, Exception) else call.code
        raise
    finally:
        seconds = time.perf_counter() - call.context.started
        state.metrics.observe_rpc(rpc, call.code.name, seconds, call.context.error)
        log.info(
            "%s %s %s",
            METHOD,
            SERVICE_PATH + rpc,
            call.code.name,
            extra={"duration_ms": round(seconds * 1000, 3)},
        )
        with contextlib.suppress(ValueError):  # a stream resumed in another context: nothing to reset
            current_request.reset(token)
