"""``POST /upload``: one file (the original contract), several ``file`` parts, and/or ZIP archives."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import InstancesDep, PrincipalDep, SettingsDep
from app.api.errors import status_for
from app.api.multipart import PartData, PartEnd, PartStart, check_declared_size, iter_events
from app.api.openapi import error_responses
from app.api.schemas import BulkUploadBody, UploadBody
from app.errors import InvalidRequest, UploadTooLarge
from app.logging import error_kind
from app.metrics import record_upload_duplicate, record_upload_rejected, record_upload_stored
from app.services.instances import StoredFile, Upload
from app.services.uploads import FileOutcome, UploadReport, UploadSession

router = APIRouter()

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small form fields around the file
MAX_IGNORED_FIELD_BYTES = 64 * 1024

ERRORS = error_responses(400, 401, 403, 408, 409, 413, 503, 507)
_NAME = "0b7c6e2a-1f0d-4c9e-9a51-2f5d0c3f8e11-IM000001.dcm"
_BULK = {
    "message": "Saved 1 of 2 files",
    "files": [
        {"file": "IM000001", "status": 201, "name": _NAME},
        {"file": "notes.txt", "status": 400, "error": "the file is neither a DICOM Part 10 file nor a DICOM data set"},
    ],
}


def _json_examples(**examples: object) -> dict[str, Any]:
    return {"application/json": {"examples": {key: {"value": value} for key, value in examples.items()}}}


SUCCESSES: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "Stored: one file (the original contract) or, for several files, all of them.",
        "content": _json_examples(
            single={"message": f"File saved as: {_NAME}", "name": _NAME, "size": 3642242},
            several={"message": "Saved 2 of 2 files", "files": [_BULK["files"][0]] * 2},
        ),
    },
    200: {
        "model": UploadBody,
        "description": "Nothing new: the same bytes are already stored.",
        "content": _json_examples(
            duplicate={"message": f"File already saved as: {_NAME}", "name": _NAME, "size": 3642242}
        ),
    },
    202: {
        "model": BulkUploadBody,
        "description": "Some files were stored, some were refused (each says why), as STOW-RS answers.",
        "content": _json_examples(partly=_BULK),
    },
}


async def _receive(request: Request, session: UploadSession, max_body: int) -> None:
    """Store every part named ``file`` as it completes; other fields are skipped (bounded)."""
    upload: Upload | None = None
    other_field = False
    ignored = 0
    try:
        async for event in iter_events(request, max_body, session.instances.settings.body_read_timeout_seconds):
            if isinstance(event, PartStart):
                other_field = event.field_name != "file"
                if event.field_name != "file":
                    continue
                if event.filename is None:
                    raise InvalidRequest("the field 'file' must carry a file (multipart filename), not text")
                if session.has_room():
                    upload = await session.instances.begin_upload(event.filename)
                else:
                    session.refuse_part(event.filename)
            elif isinstance(event, PartData):
                if upload is not None:
                    try:
                        await upload.write(event.data)
                    except UploadTooLarge as exc:
                        await upload.abort()
                        session.fail_part(upload.original_name, exc)
                        upload = None
                elif other_field:
                    ignored += len(event.data)
                    if ignored > MAX_IGNORED_FIELD_BYTES:
                        raise InvalidRequest("form fields other than 'file' are too large")
            elif isinstance(event, PartEnd) and upload is not None:
                done, upload = upload, None
                await session.finish_part(done)
    except BaseException:
        if upload is not None:
            await upload.abort()
        raise
    if upload is not None:
        await upload.abort()
        raise InvalidRequest("the multipart/form-data body ended before the file was complete")


def _count(request: Request, report: UploadReport) -> None:
    """Metrics per file: stored (files, bytes), duplicates, and files refused inside a partly successful request."""
    partly = any(o.stored for o in report.files) and any(o.error for o in report.files)
    for outcome in report.files:
        if outcome.stored is not None and outcome.stored.created:
            record_upload_stored(request, outcome.stored.size)
        elif outcome.stored is not None:
            record_upload_duplicate(request)
        elif outcome.error is not None and partly:
            record_upload_rejected(request, error_kind(outcome.error))


def _entry(outcome: FileOutcome) -> dict[str, Any]:
    if outcome.stored is not None:
        status = 201 if outcome.stored.created else 200
        return {"file": outcome.file, "status": status, "name": outcome.stored.name} | _warnings(outcome.stored)
    assert outcome.error is not None
    entry = {"file": outcome.file, "status": status_for(outcome.error), "error": outcome.error.message}
    return entry | outcome.error.details()


def _warnings(stored: StoredFile) -> dict[str, list[str]]:
    """``{"warnings": [...]}`` when the file was not conformant, else nothing: conformant answers stay as they were."""
    return {"warnings": list(stored.warnings)} if stored.warnings else {}


def _single_response(outcome: FileOutcome) -> JSONResponse:
    if outcome.error is not None:
        raise outcome.error
    assert outcome.stored is not None
    stored = outcome.stored
    if not stored.created:
        body = {"message": f"File already saved as: {stored.name}", "name": stored.name, "size": stored.size}
        return JSONResponse(body | _warnings(stored), status_code=200)
    body = UploadBody(message=f"File saved as: {stored.name}", name=stored.name, size=stored.size).model_dump(
        exclude_none=True
    )
    return JSONResponse(body | _warnings(stored), status_code=201)


def _bulk_status(entries: list[dict[str, Any]]) -> int:
    """201 all stored, 200 all already stored, 202 some failed, else the failures' common 4xx (STOW-RS)."""
    statuses: list[int] = [entry["status"] for entry in entries]
    failures = [s for s in statuses if s >= 400]
    if not failures:
        return 201 if 201 in statuses else 200
    if len(failures) < len(statuses):
        return 202
    if len(set(failures)) == 1:
        return failures[0]
    return max(failures) if max(failures) >= 500 else 400


def _bulk_response(report: UploadReport) -> JSONResponse:
    entries = [_entry(outcome) for outcome in report.files]
    saved = sum(1 for entry in entries if entry["status"] < 400)
    body = BulkUploadBody(message=f"Saved {saved} of {len(entries)} files", files=entries)
    status = _bulk_status(entries)
    content = body.model_dump(exclude_none=True)
    if status >= 400:  # every error answer carries "error", the bulk details stay alongside
        content = {"error": f"none of the {len(entries)} files was stored: see files[].error", **content}
    return JSONResponse(content, status_code=status)


@router.post(
    "/upload",
    status_code=201,
    summary="Upload DICOM files (one, several, or ZIP archives)",
    response_model=UploadBody | BulkUploadBody,
    responses={**ERRORS, **SUCCESSES},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"}}},
                    }
                }
            },
        }
    },
)
async def upload(
    request: Request, instances: InstancesDep, settings: SettingsDep, principal: PrincipalDep
) -> JSONResponse:
    """Validate each file as DICOM (or each member of a ZIP), store it durably under a new name, index it.

    One plain file answers as before (``201 {"message": "File saved as: <name>", ...}``); several files
    or an archive answer ``{"message": "Saved K of N files", "files": [...]}``.
    """
    max_body = settings.max_upload_bytes + MULTIPART_OVERHEAD
    check_declared_size(request, max_body)
    session = UploadSession(instances, principal)
    await _receive(request, session, max_body)
    report = session.report
    _count(request, report)
    if not report.files:
        if report.archives:
            raise InvalidRequest("the ZIP archive holds no files")
        raise InvalidRequest("no file received: send it as multipart/form-data in a field named 'file'")
    if report.single:
        return _single_response(report.files[0])
    return _bulk_response(report)
