"""STOW-RS (PS3.18 §10.5): ``POST /studies`` and ``POST /studies/{study}`` with ``multipart/related``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from python_multipart.multipart import parse_options_header

from app.api.deps import InstancesDep, PrincipalDep, SettingsDep
from app.api.multipart import PartData, PartEnd, PartStart, check_declared_size, iter_events
from app.api.openapi import error_responses
from app.api.routes.dicomweb.common import DICOM_JSON, StudyUID, base_url
from app.errors import InvalidRequest, UnsupportedMediaType, UploadTooLarge
from app.services.instances import Upload
from app.services.stow import FailureReason, StowSession, failure_reason

router = APIRouter()

MULTIPART_OVERHEAD = 64 * 1024
DICOM = b"application/dicom"
ERRORS = error_responses(400, 408, 413, 415, 503)
STORE_EXAMPLE = {
    "00081190": {"vr": "UR", "Value": ["http://127.0.0.1:8080/dicom-web/studies/1.2.3"]},
    "00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.4"]}}]},
}
ANSWERS: dict[int | str, dict[str, Any]] = {
    status: {"content": {DICOM_JSON: {"schema": {"type": "object"}, "example": STORE_EXAMPLE}}, "description": text}
    for status, text in (
        (200, "Every instance was stored (Store Instances Response Module, PS3.18 Table 10.5.3-1)."),
        (202, "Some instances were stored, some failed: see FailedSOPSequence (0008,1198)."),
    )
}
# 409: nothing stored, answered with the response module; the error table's JSON shape is listed too
ANSWERS[409] = error_responses(409)[409] | {
    "description": "No instance was stored: the response module says why for each (FailureReason (0008,1197))."
}
ANSWERS[409]["content"] = {
    **ANSWERS[409]["content"],
    DICOM_JSON: {"schema": {"type": "object"}, "example": STORE_EXAMPLE},
}
BODY = {
    "requestBody": {
        "required": True,
        "content": {'multipart/related; type="application/dicom"': {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _check_media_type(request: Request) -> None:
    """``multipart/related`` whose ``type`` is ``application/dicom`` (PS3.18 §10.5.1.1), else 415."""
    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    part_type = params.get(b"type", DICOM).strip().lower()
    if content_type != b"multipart/related" or part_type != DICOM:
        raise UnsupportedMediaType(
            'STOW-RS takes multipart/related; type="application/dicom" (DICOM JSON and XML stores are not offered)'
        )


async def _receive(request: Request, session: StowSession, max_body: int, read_timeout: float) -> None:
    """Store each part as it completes; parts of another media type fail with 0xC000."""
    upload: Upload | None = None
    try:
        async for event in iter_events(request, max_body, read_timeout, b"multipart/related"):
            if isinstance(event, PartStart):
                part_type, _ = parse_options_header(event.headers.get("content-type", "application/dicom"))
                if part_type != DICOM:
                    session.fail(FailureReason.CANNOT_UNDERSTAND)
                elif not session.has_room():
                    session.fail(FailureReason.OUT_OF_RESOURCES)
                else:
                    upload = await session.begin()
            elif isinstance(event, PartData) and upload is not None:
                try:
                    await upload.write(event.data)
                except UploadTooLarge as exc:
                    await upload.abort()
                    session.fail(failure_reason(exc))
                    upload = None
            elif isinstance(event, PartEnd) and upload is not None:
                done, upload = upload, None
                await session.finish(done)
    except BaseException:
        if upload is not None:
            await upload.abort()
        raise
    if upload is not None:
        await upload.abort()
        raise InvalidRequest("the multipart/related body ended before the last part was complete")


async def _store(
    request: Request, instances: InstancesDep, settings: SettingsDep, principal: PrincipalDep, study: str | None
) -> Response:
    session = StowSession(instances, principal, study)  # may this caller store at all (403 before 415)
    await session.check_study()
    _check_media_type(request)
    max_body = settings.max_upload_bytes + MULTIPART_OVERHEAD
    check_declared_size(request, max_body)
    await _receive(request, session, max_body, settings.body_read_timeout_seconds)
    if not session.result.outcomes:
        raise InvalidRequest("the request holds no application/dicom part")
    body = session.result.body(base_url(request, settings), study)
    return Response(json.dumps(body).encode(), status_code=session.result.status, media_type=DICOM_JSON)


@router.post("/studies", summary="STOW-RS store instances", responses={**ERRORS, **ANSWERS}, openapi_extra=BODY)
async def store_instances(
    request: Request, instances: InstancesDep, settings: SettingsDep, principal: PrincipalDep
) -> Response:
    """PS3.18 §10.5 (Store Instances): each ``application/dicom`` part is stored as ``POST /upload`` stores a file."""
    return await _store(request, instances, settings, principal, None)


@router.post(
    "/studies/{study}",
    summary="STOW-RS store instances of a study",
    responses={**ERRORS, **ANSWERS},
    openapi_extra=BODY,
)
async def store_study_instances(
    request: Request, instances: InstancesDep, settings: SettingsDep, principal: PrincipalDep, study: StudyUID
) -> Response:
    """PS3.18 §10.5 (Store Instances): as ``POST /studies``; an instance of another study fails with 0xA900."""
    return await _store(request, instances, settings, principal, study)
