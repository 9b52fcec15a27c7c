"""WADO-URI (PS3.18 §9): ``GET /wado?requestType=WADO&studyUID=&seriesUID=&objectUID=``, as OHIF's
``wadouri`` image loader and older viewers ask for one instance."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import FileResponse

from app.api.deps import DicomWebDep, PrincipalDep
from app.api.openapi import error_responses
from app.api.routes.dicomweb.common import BINARY, UID_PATTERN
from app.dicom.render import Window
from app.errors import InvalidRequest, NotAcceptable
from app.services.dicomweb import Target
from app.services.renders import ImageFormat, RenderRequest

router = APIRouter()

ERRORS = error_responses(400, 404, 406, 415, 422, 503)
ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/dicom": BINARY, "image/jpeg": BINARY, "image/png": BINARY},
        "description": "The object.",
    }
}
FORMATS = {"image/jpeg": ImageFormat.JPEG, "image/png": ImageFormat.PNG}


def _content_type(text: str) -> str:
    """The first of the listed types this service produces (PS3.18 §9.1.2.1.4; ``*/*`` means the default)."""
    for candidate in (part.split(";")[0].strip().lower() for part in text.split(",")):
        if candidate in ("application/dicom", *FORMATS):
            return candidate
        if candidate in ("*/*", "image/*"):
            return "image/jpeg"
    raise NotAcceptable("contentType must be application/dicom, image/jpeg or image/png")


def _window(center: float | None, width: float | None) -> Window | None:
    if center is None and width is None:
        return None
    if center is None or width is None or not width > 0:
        raise InvalidRequest("windowCenter and windowWidth go together; the width must be positive")
    return Window(center, width)


@router.get("/wado", summary="WADO-URI retrieve an object", responses={**ERRORS, **ANSWER})
async def wado(
    service: DicomWebDep,
    principal: PrincipalDep,
    request_type: Annotated[str, Query(alias="requestType", description="Always WADO.")],
    study_uid: Annotated[
        str, Query(alias="studyUID", pattern=UID_PATTERN, max_length=256, description="Study Instance UID.")
    ],
    series_uid: Annotated[
        str, Query(alias="seriesUID", pattern=UID_PATTERN, max_length=256, description="Series Instance UID.")
    ],
    object_uid: Annotated[
        str, Query(alias="objectUID", pattern=UID_PATTERN, max_length=256, description="SOP Instance UID.")
    ],
    content_type: Annotated[
        str, Query(alias="contentType", max_length=200, description="application/dicom, image/jpeg or image/png.")
    ] = "image/jpeg",
    frame_number: Annotated[
        int, Query(alias="frameNumber", ge=1, le=2**31, description="1-based frame to render.")
    ] = 1,
    window_center: Annotated[
        float | None, Query(alias="windowCenter", allow_inf_nan=False, description="Window centre (with windowWidth).")
    ] = None,
    window_width: Annotated[
        float | None, Query(alias="windowWidth", allow_inf_nan=False, description="Window width, positive.")
    ] = None,
    rows: Annotated[int | None, Query(ge=1, le=65535, description="Fit the image in this many rows.")] = None,
    columns: Annotated[int | None, Query(ge=1, le=65535, description="Fit the image in this many columns.")] = None,
    image_quality: Annotated[
        int | None, Query(alias="imageQuality", ge=1, le=100, description="JPEG quality 1..100.")
    ] = None,
) -> Response:
    """PS3.18 §9.1: the stored file (``contentType=application/dicom``, byte for byte) or one frame rendered
    as ``image/jpeg`` (the default) or ``image/png``, windowed and fitted inside ``rows`` x ``columns``."""
    if request_type != "WADO":
        raise InvalidRequest("requestType must be WADO")
    target = Target(study_uid, series_uid, object_uid)
    wanted = _content_type(content_type)
    if wanted == "application/dicom":
        path = await service.stored_file(principal, target)
        return FileResponse(path, media_type="application/dicom")
    image_format = FORMATS[wanted]
    size = min(v for v in (rows, columns) if v is not None) if rows or columns else None
    quality = image_quality if image_format is ImageFormat.JPEG else None
    render = RenderRequest(frame_number, _window(window_center, window_width), size, image_format, quality)
    image = await service.rendered(principal, target, render)
    return Response(image.content, media_type=image.media_type, headers={"Cache-Control": "private"})
