"""OpenAPI details shared by every route: the ``{"error": ...}`` responses with real examples.

Routes declare which errors they can answer with ``responses=error_responses(400, 404)``;
:func:`install_openapi` replaces FastAPI's default ``422 Validation Error`` (we answer invalid
parameters with ``400 {"error": ...}``) so the document never promises a shape we do not send.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.api.schemas import ErrorBody

ERROR_EXAMPLES: dict[int, tuple[str, list[str]]] = {
    400: (
        "The request or the file is invalid; nothing was changed.",
        [
            "the file is neither a DICOM Part 10 file nor a DICOM data set",
            "malformed tag 'zz': use (gggg,eeee) with 4 hex digits each",
        ],
    ),
    401: (
        "Credentials are missing, wrong, expired or revoked (auth required); WWW-Authenticate names Bearer.",
        ["authentication required: send Authorization: Bearer <token> or Basic credentials"],
    ),
    403: (
        "The caller may see this but not do this (a read-only grant, key or share link).",
        ["this credential may only read: deleting needs write access"],
    ),
    429: ("Too many failed logins; Retry-After says when to try again.", ["too many failed logins: retry later"]),
    404: ("No stored file has that name, or the file has no such element.", ["no stored file is named 'x.dcm'"]),
    413: (
        "The upload is larger than LIGHTBOX_MAX_UPLOAD_BYTES.",
        ["the upload is 2147549184 bytes, more than the limit of 1073807360 bytes"],
    ),
    415: (
        "No installed decoder handles the pixel data's transfer syntax, or the body's media type is not taken.",
        [
            "no installed decoder handles the transfer syntax JPEG 2000 Part 2 Multi-component Image Compression",
            'STOW-RS takes multipart/related; type="application/dicom"',
        ],
    ),
    422: (
        "The file holds no image that can be shown faithfully.",
        ["this file has no image: it holds no Pixel Data element"],
    ),
    406: (
        "No representation the client accepts can be produced (PS3.18 8.7).",
        ["the instances cannot be sent in transfer syntax 1.2.840.10008.1.2.4.50: use * or the default"],
    ),
    408: (
        "The client stopped sending the body; nothing was kept.",
        ["no data arrived for 30 s: the upload was stopped and nothing was kept"],
    ),
    409: (
        "Another file with the same SOP Instance UID is already stored.",
        ["a different file with SOP Instance UID 1.2.3 is already stored as 0b7c...-ct.dcm"],
    ),
    503: (
        "The storage folder cannot be written, or the index does not answer.",
        ["the storage folder is not writable: the file was not saved"],
    ),
    507: ("The storage device is full.", ["the storage device is full: the file was not saved"]),
}


def _examples(status: int) -> dict[str, Any]:
    return {f"example {i + 1}": {"value": {"error": text}} for i, text in enumerate(ERROR_EXAMPLES[status][1])}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for these statuses: the ErrorBody model, a description and examples."""
    return {
        status: {
            "model": ErrorBody,
            "description": ERROR_EXAMPLES[status][0],
            "content": {"application/json": {"examples": _examples(status)}},
        }
        for status in statuses
    }


def _replace_default_validation_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents ``422 HTTPValidationError`` for any route with parameters; we answer 400 ErrorBody."""
    error_ref = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            content = responses.get("422", {}).get("content", {}).get("application/json", {})
            if str(content.get("schema", {}).get("$ref", "")).endswith("/HTTPValidationError"):
                del responses["422"]
                responses.setdefault(
                    "400",
                    {
                        "description": ERROR_EXAMPLES[400][0],
                        "content": {"application/json": {"schema": error_ref, "examples": _examples(400)}},
                    },
                )
    schemas = schema.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
    return schema


def _without_security(schema: dict[str, Any]) -> dict[str, Any]:
    """Single-user mode asks for no credentials, so the document must not promise it does."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            if operation.pop("security", None) is None:
                continue  # no credentials involved (probes, and login: a wrong password is 401 in any mode)
            for status in ("401", "403"):
                operation.get("responses", {}).pop(status, None)
    schema.get("components", {}).pop("securitySchemes", None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Build the document once, with FastAPI's 422 replaced by our 400 error shape (and, in single-user
    mode, without the credentials and 401/403 answers that only apply when auth is required)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            schema = _replace_default_validation_errors(schema)
            if not app.state.settings.auth_required:
                schema = _without_security(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
