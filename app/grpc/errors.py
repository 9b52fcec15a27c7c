"""The one table mapping domain errors to gRPC status codes (the gRPC twin of :mod:`app.api.errors`).

The human message travels as the status details; a traceback never does: anything that is not a
:class:`~app.errors.LightboxError` is logged here and answered ``INTERNAL`` with a fixed message.
"""

from __future__ import annotations

import logging

import grpc

from app import errors
from app.logging import error_kind, note_error

log = logging.getLogger("lightbox.grpc")

CODE_BY_ERROR: dict[type[errors.LightboxError], grpc.StatusCode] = {
    errors.InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    errors.InvalidDicom: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotAuthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.TooManyAttempts: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Conflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.InstanceConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.UploadTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.UploadTimedOut: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.TooManyFiles: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.NotAcceptable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.UnsupportedMediaType: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotRenderable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StorageFull: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.StorageUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.IndexUnavailable: grpc.StatusCode.UNAVAILABLE,
}

INTERNAL_MESSAGE = "internal error: the call could not be completed"


def code_for(error: errors.LightboxError) -> grpc.StatusCode:
    """The code of the most specific class of ``error`` in the table (``INVALID_ARGUMENT`` if none)."""
    for cls in type(error).__mro__:
        if cls in CODE_BY_ERROR:
            return CODE_BY_ERROR[cls]
    return grpc.StatusCode.INVALID_ARGUMENT


def status_of(error: BaseException, method: str) -> tuple[grpc.StatusCode, str]:
    """The code and message a failed call ends with; unexpected errors are logged, never sent."""
    if isinstance(error, errors.LightboxError):
        note_error(error_kind(error))
        return code_for(error), error.message
    note_error(error_kind(error))
    log.error("unexpected error in %s", method, exc_info=error)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE
