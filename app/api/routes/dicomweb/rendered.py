"""Rendered resources and thumbnails of WADO-RS (PS3.18 §10.4.1.1.3, §10.4.1.1.6), through the renderer's cache.

``image/jpeg`` (the default) or ``image/png`` by ``Accept``; ``window``, ``viewport`` and ``quality``
as PS3.18 §8.3.5.1 defines them. A rendered study or series is one image part per instance.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from app.api.deps import DicomWebDep, PrincipalDep
from app.api.openapi import error_responses
from app.api.routes.dicomweb.common import (
    BINARY,
    FrameList,
    InstanceUID,
    SeriesUID,
    StudyUID,
    accepted,
    frame_numbers,
    location,
    multipart_body,
)
from app.dicom.negotiation import rendered_type
from app.dicom.render import Window
from app.errors import InvalidRequest
from app.services.dicomweb import Target
from app.services.renders import ImageFormat, RenderRequest

router = APIRouter()

RENDER_ERRORS = error_responses(400, 404, 406, 415, 422, 503)
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/jpeg": BINARY, "image/png": BINARY}, "description": "The rendered image."}
}
MEDIA: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"image/jpeg": BINARY, "image/png": BINARY, "video/mp4": BINARY, "video/mpeg": BINARY},
        "description": "The rendered image; a video instance asked for as video/* is sent as its video.",
    }
}
IMAGES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"multipart/related": BINARY}, "description": "One rendered image per instance."}
}
WindowParam = Annotated[str | None, Query(max_length=100, description="center,width[,function] (PS3.18 8.3.5.1.4).")]
ViewportParam = Annotated[str | None, Query(max_length=40, description="vw,vh: fit the image inside vw x vh.")]
QualityParam = Annotated[int | None, Query(ge=1, le=100, description="JPEG quality 1..100.")]
THUMBNAIL_SIZE = 128


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


def _request(
    request: Request, frame: int, window: str | None, viewport: str | None, quality: int | None, thumbnail: bool
) -> RenderRequest:
    media_type = rendered_type(accepted(request))
    image_format = ImageFormat.PNG if media_type == "image/png" else ImageFormat.JPEG
    if quality is not None and image_format is not ImageFormat.JPEG:
        raise InvalidRequest("quality applies to image/jpeg only")
    size = _viewport(viewport) or (THUMBNAIL_SIZE if thumbnail else None)
    return RenderRequest(frame, _window(window), size, image_format, quality)


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
    render = _request(request, frame, window, viewport, quality, thumbnail)
    image = await service.rendered(principal, target, render)
    headers = location(request, {"ETag": image.etag, "Cache-Control": "private"})
    return Response(image.content, media_type=image.media_type, headers=headers)


async def _render_all(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    target: Target,
    window: str | None,
    viewport: str | None,
    quality: int | None,
) -> Response:
    render = _request(request, 1, window, viewport, quality, thumbnail=False)
    images = await service.rendered_all(principal, target, render)
    body, content_type = multipart_body((image.media_type, image.content) for image in images)
    return Response(body, headers=location(request, {"Content-Type": content_type, "Cache-Control": "private"}))


@router.get("/studies/{study}/rendered", summary="WADO-RS rendered study", responses={**RENDER_ERRORS, **IMAGES})
async def rendered_study(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    window: WindowParam = None,
    viewport: ViewportParam = None,
    quality: QualityParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.3: every instance of the study rendered (its first frame), one part each."""
    return await _render_all(request, service, principal, Target(study), window, viewport, quality)


@router.get(
    "/studies/{study}/series/{series}/rendered",
    summary="WADO-RS rendered series",
    responses={**RENDER_ERRORS, **IMAGES},
)
async def rendered_series(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    window: WindowParam = None,
    viewport: ViewportParam = None,
    quality: QualityParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.3: every instance of the series rendered (its first frame), one part each."""
    return await _render_all(request, service, principal, Target(study, series), window, viewport, quality)


# -- rendered and thumbnails (PS3.18 10.4.1.1.3, 10.4.1.1.6) -------------------------------------
@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/rendered",
    summary="WADO-RS rendered instance",
    responses={**RENDER_ERRORS, **MEDIA},
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
    """PS3.18 §10.4.1.1.3: the first frame as image/jpeg (default) or image/png, through the renderer's cache;
    a video instance as ``video/mp4`` or ``video/mpeg`` (PS3.18 §8.7.4) when ``Accept`` asks for video."""
    target = Target(study, series, instance)
    ranges = accepted(request)
    if any(media.media_type.startswith("video/") for media in ranges):
        video = await service.rendered_video(principal, target, ranges)
        return Response(
            video.content, media_type=video.media_type, headers=location(request, {"Cache-Control": "private"})
        )
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
    return await _render(request, service, principal, target, frame_numbers(frames)[0], window, viewport, quality)


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


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/frames/{frames}/thumbnail",
    summary="WADO-RS frame thumbnail",
    responses={**RENDER_ERRORS, **IMAGE},
)
async def frame_thumbnail(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    frames: FrameList,
    viewport: ViewportParam = None,
) -> Response:
    """PS3.18 §10.4.1.1.6: a small rendering of one frame (the first of the list)."""
    target = Target(study, series, instance)
    number = frame_numbers(frames)[0]
    return await _render(request, service, principal, target, number, None, viewport, None, thumbnail=True)
