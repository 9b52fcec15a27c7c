"""The one table mapping domain errors to HTTP statuses, and the JSON error shape ``{"error": ...}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app import errors
from app.logging import error_kind, note_error, status_kind

log = logging.getLogger("lightbox.errors")

STATUS_BY_ERROR: dict[type[errors.LightboxError], int] = {
    errors.InvalidRequest: 400,
    errors.InvalidDicom: 400,
    errors.NotAuthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.TooManyAttempts: 429,
    errors.FileNotFound: 404,
    errors.ElementNotFound: 404,
    errors.InstanceConflict: 409,
    errors.UploadTooLarge: 413,
    errors.UploadTimedOut: 408,
    errors.TooManyFiles: 413,
    errors.UnsupportedEncoding: 415,
    errors.NotAcceptable: 406,
    errors.UnsupportedMediaType: 415,
    errors.NotRenderable: 422,
    errors.StorageFull: 507,
    errors.StorageUnavailable: 503,
    errors.StoredFileMissing: 503,
    errors.StorageLooksWrong: 503,
    errors.IndexUnavailable: 503,
}


def status_for(error: errors.LightboxError) -> int:
    """The status of the most specific class of ``error`` in the table (400 if none)."""
    for cls in type(error).__mro__:
        if cls in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[cls]
    return 400


#: RFC 9110 11.6.1: a 401 names the scheme the client should use (Swagger and curl understand Bearer).
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="lightbox"'}


def headers_for(error: errors.LightboxError) -> dict[str, str] | None:
    """Headers an error answer needs: the 401 challenge, the 429 Retry-After (RFC 6585 4)."""
    if isinstance(error, errors.NotAuthenticated):
        return CHALLENGE
    if isinstance(error, errors.TooManyAttempts):
        return {"Retry-After": str(error.retry_after)}
    return None


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, details: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": message, **(details or {})}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for problem in exc.errors()[:3]:
        where = ".".join(str(p) for p in problem.get("loc", ()) if p not in ("query", "path", "body"))
        parts.append(f"{where}: {problem.get('msg', 'invalid')}" if where else str(problem.get("msg", "invalid")))
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves as ``{"error": "..."}``; nothing leaves as a traceback."""

    async def on_domain_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.LightboxError)
        note_error(error_kind(exc))
        return error_response(status_for(exc), exc.message, headers_for(exc), exc.details())

    async def on_http_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers) if exc.headers else None
        note_error(status_kind(exc.status_code))
        return error_response(exc.status_code, str(exc.detail), headers)

    async def on_validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        note_error("invalid_request")
        return error_response(400, _validation_message(exc))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        note_error(error_kind(exc))
        route = getattr(request.scope.get("route"), "path", "-")  # the template: raw paths may name patients
        log.exception("unexpected error on %s %s", request.method, route)
        return error_response(500, "internal error: the request could not be completed")

    app.add_exception_handler(errors.LightboxError, on_domain_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(Exception, on_unexpected)
