"""WADO-RS (PS3.18 §10.4): retrieve instances, metadata, frames, bulk data, rendered images and thumbnails."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from app.api.deps import DicomWebDep, PrincipalDep, SettingsDep
from app.api.openapi import error_responses
from app.api.routes.dicomweb.common import (
    BINARY,
    DICOM_JSON,
    JSON_ARRAY,
    InstanceUID,
    SeriesUID,
    StudyUID,
    accepted,
    base_url,
    json_answer,
    multipart_body,
    multipart_stream,
)
from app.dicom.frames import Frame
from app.dicom.negotiation import check_json, rendered_type, retrieve_syntax
from app.dicom.render import Window
from app.errors import InvalidRequest
from app.services.dicomweb import Target
from app.services.renders import ImageFormat, RenderRequest

router = APIRouter()

ERRORS = error_responses(400, 404, 406, 503)
RENDER_ERRORS = error_responses(400, 404, 406, 415, 422, 503)
MULTIPART: dict[int | str, dict[str, Any]] = {
    200: {"content": {"multipart/related": BINARY}, "description": "One part per instance or frame."}
}
JSON: dict[int | str, dict[str, Any]] = {
    200: {"content": {DICOM_JSON: JSON_ARRAY}, "description": "DICOM JSON (PS3.18 Annex F)."}
}
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": BINARY, "image/png": BINARY}, "description": "The rendered image."}
}
FrameList = Annotated[str, Path(pattern=r"^[0-9]{1,9}(,[0-9]{1,9}){0,999}$", description="1-based, e.g. 1,2,3.")]
Tag = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{8}$", description="The tag of a bulk element, e.g. 7FE00010.")]
WindowParam = Annotated[str | None, Query(max_length=100, description="center,width[,function] (PS3.18 8.3.5.1.4).")]
ViewportParam = Annotated[str | None, Query(max_length=40, description="vw,vh: fit the image inside vw x vh.")]
QualityParam = Annotated[int | None, Query(ge=1, le=100, description="JPEG quality 1..100.")]
THUMBNAIL_SIZE = 128


async def _retrieve(request: Request, service: DicomWebDep, principal: PrincipalDep, target: Target) -> Response:
    retrieval = await service.retrieve(principal, target, retrieve_syntax(accepted(request)))
    return multipart_stream("application/dicom", retrieval.parts)


async def _metadata(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep, target: Target
) -> Response:
    check_json(accepted(request))
    body = await service.metadata(principal, target, base_url(request, settings))
    return await json_answer(request, body)


def _frames_answer(frames: list[Frame]) -> Response:
    def media(frame: Frame) -> str:
        return f"{frame.media_type}; transfer-syntax={frame.transfer_syntax}"

    body, content_type = multipart_body((media(frame), frame.content) for frame in frames)
    return Response(body, headers={"Content-Type": content_type})


def _numbers(text: str) -> list[int]:
    numbers = [int(part) for part in text.split(",")]
    if any(number < 1 for number in numbers):
        raise InvalidRequest("frame numbers start at 1")
    return numbers


def _window(text: str | None) -> Window | None:
    """``center,width`` with an optional VOI LUT function (only LINEAR is applied: PS3.18 8.3.5.1.4)."""
    if text is None:
        return None
    parts = text.split(",")
    try:
        center, width = float(parts[0]), float(parts[1])
    except (ValueError, IndexError):
        raise InvalidRequest("window must be center,width[,function], for example window=40,400") from None
    if len(parts) > 3 or not width > 0 or not all(abs(v) < float("inf") for v in (center, width)):
        raise InvalidRequest("window width must be a positive finite number and the centre finite")
    return Window(center, width)


def _viewport(text: str | None) -> int | None:
    if text is None:
        return None
    match = re.fullmatch(r"(\d{1,5}),(\d{1,5})", text)
    if not match or min(int(match[1]), int(match[2])) < 1:
        raise InvalidRequest("viewport must be vw,vh in pixels, for example viewport=512,512")
    return min(int(match[1]), int(match[2]))


async def _render(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    target: Target,
    frame: int,
    window: str | None,
    viewport: str | None,
    quality: int | None,
    thumbnail: bool = False,
) -> Response:
    media_type = rendered_type(accepted(request))
    image_format = ImageFormat.PNG if media_type == "image/png" else ImageFormat.JPEG
    if quality is not None and image_format is not ImageFormat.JPEG:
        raise InvalidRequest("quality applies to image/jpeg only")
    size = _viewport(viewport) or (THUMBNAIL_SIZE if thumbnail else None)
    render = RenderRequest(frame, _window(window), size, image_format, quality)
    image = await service.rendered(principal, target, render)
    return Response(
        image.content, media_type=image.media_type, headers={"ETag": image.etag, "Cache-Control": "private"}
    )


# -- retrieve (PS3.18 10.4.1.1.1) ----------------------------------------------------------------
@router.get("/studies/{study}", summary="WADO-RS retrieve a study", responses={**ERRORS, **MULTIPART})
async def retrieve_study(request: Request, service: DicomWebDep, principal: PrincipalDep, study: StudyUID) -> Response:
    """PS3.18 §10.4.1.1.1: every instance of the study, ``multipart/related; type="application/dicom"``."""
    return await _retrieve(request, service, principal, Target(study))


@router.get("/studies/{study}/series/{series}", summary="WADO-RS retrieve a series", responses={**ERRORS, **MULTIPART})
async def retrieve_series(
    request: Request, service: DicomWebDep, principal: PrincipalDep, study: StudyUID, series: SeriesUID
) -> Response:
    """PS3.18 §10.4.1.1.1: every instance of the series; ``transfer-syntax=*`` sends them as stored."""
    return await _retrieve(request, service, principal, Target(study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}",
    summary="WADO-RS retrieve an instance",
    responses={**ERRORS, **MULTIPART},
)
async def retrieve_instance(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
) -> Response:
    """PS3.18 §10.4.1.1.1: one instance; without ``transfer-syntax`` it is sent in Explicit VR Little Endian."""
    return await _retrieve(request, service, principal, Target(study, series, instance))


# -- metadata (PS3.18 10.4.1.1.2) ----------------------------------------------------------------
@router.get("/studies/{study}/metadata", summary="WADO-RS study metadata", responses={**ERRORS, **JSON})
async def study_metadata(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep, study: StudyUID
) -> Response:
    """PS3.18 §10.4.1.1.2: every instance's header as DICOM JSON, bulk values as BulkDataURIs."""
    return await _metadata(request, service, settings, principal, Target(study))


@router.get(
    "/studies/{study}/series/{series}/metadata", summary="WADO-RS series metadata", responses={**ERRORS, **JSON}
)
async def series_metadata(
    request: Request,
    service: DicomWebDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
) -> Response:
    """PS3.18 §10.4.1.1.2: the series' headers as DICOM JSON."""
    return await _metadata(request, service, settings, principal, Target(study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/metadata",
    summary="WADO-RS instance metadata",
    responses={**ERRORS, **JSON},
)
async def instance_metadata(
    request: Request,
    service: DicomWebDep,
    settings: SettingsDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
) -> Response:
    """PS3.18 §10.4.1.1.2: the instance's header as a one-element DICOM JSON array."""
    return await _metadata(request, service, settings, principal, Target(study, series, instance))


# -- frames and bulk data (PS3.18 10.4.1.1.4, 10.4.1.1.5) ----------------------------------------
@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
    summary="WADO-RS retrieve frames",
    responses={**RENDER_ERRORS, **MULTIPART},
)
async def retrieve_frames(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    frames: FrameList,
) -> Response:
    """PS3.18 §10.4.1.1.4: the frames as stored (``*/*``, ``transfer-syntax=*`` or their compressed media type)
    or decoded (``application/octet-stream``), one part each."""
    target = Target(study, series, instance)
    return _frames_answer(await service.frames(principal, target, _numbers(frames), accepted(request)))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}",
    summary="WADO-RS retrieve bulk data",
    responses={**ERRORS, **MULTIPART},
)
async def retrieve_bulkdata(
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    tag: Tag,
) -> Response:
    """PS3.18 §10.4.1.1.5: the value a metadata BulkDataURI names; Pixel Data as its frames, as stored."""
    target = Target(study, series, instance)  # any tag, private ones too: metadata names them all
    return _frames_answer(await service.bulkdata(principal, target, int(tag, 16)))


# -- rendered and thumbnails (PS3.18 10.4.1.1.3, 10.4.1.1.6) -------------------------------------
@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    summary="WADO-RS rendered instance",
    responses={**RENDER_ERRORS, **IMAGE},
)
async def rendered_instance(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    window: WindowParam = None,
    viewport: ViewportParam = None,
    quality: QualityParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.3: the first frame as image/jpeg (default) or image/png, through the renderer's cache."""
    target = Target(study, series, instance)
    return await _render(request, service, principal, target, 1, window, viewport, quality)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/rendered",
    summary="WADO-RS rendered frame",
    responses={**RENDER_ERRORS, **IMAGE},
)
async def rendered_frame(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    frames: FrameList,
    window: WindowParam = None,
    viewport: ViewportParam = None,
    quality: QualityParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.3: one frame rendered (the first of the list)."""
    target = Target(study, series, instance)
    return await _render(request, service, principal, target, _numbers(frames)[0], window, viewport, quality)


@router.get("/studies/{study}/thumbnail", summary="WADO-RS study thumbnail", responses={**RENDER_ERRORS, **IMAGE})
async def study_thumbnail(
    request: Request, service: DicomWebDep, principal: PrincipalDep, study: StudyUID, viewport: ViewportParam = None
) -> Response:
    """PS3.18 §10.4.1.1.6: a small rendering of the study's first instance."""
    return await _render(request, service, principal, Target(study), 1, None, viewport, None, thumbnail=True)


@router.get(
    "/studies/{study}/series/{series}/thumbnail",
    summary="WADO-RS series thumbnail",
    responses={**RENDER_ERRORS, **IMAGE},
)
async def series_thumbnail(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    viewport: ViewportParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.6: a small rendering of the series' first instance."""
    target = Target(study, series)
    return await _render(request, service, principal, target, 1, None, viewport, None, thumbnail=True)


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/thumbnail",
    summary="WADO-RS instance thumbnail",
    responses={**RENDER_ERRORS, **IMAGE},
)
async def instance_thumbnail(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    viewport: ViewportParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.6: a small rendering of the instance's first frame."""
    target = Target(study, series, instance)
    return await _render(request, service, principal, target, 1, None, viewport, None, thumbnail=True)
