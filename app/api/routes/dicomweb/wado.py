"""WADO-RS (PS3.18 §10.4): retrieve instances, metadata, frames and bulk data (renders: :mod:`.rendered`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import StreamingResponse

from app.api.deps import ArchivesDep, DicomWebDep, PrincipalDep, SettingsDep
from app.api.openapi import error_responses
from app.api.routes.dicomweb.common import (
    BINARY,
    DICOM_JSON,
    JSON_ARRAY,
    FrameList,
    InstanceUID,
    SeriesUID,
    StudyUID,
    accepted,
    base_url,
    frame_numbers,
    json_answer,
    location,
    multipart_body,
    multipart_stream,
)
from app.config import Settings
from app.dicom.frames import Frame
from app.dicom.negotiation import check_json, retrieve_syntax, zip_range
from app.services.dicomweb import Target

router = APIRouter()

ERRORS = error_responses(400, 404, 406, 503)
FRAME_ERRORS = error_responses(400, 404, 406, 415, 422, 503)
MULTIPART: dict[int | str, dict[str, Any]] = {
    200: {"content": {"multipart/related": BINARY}, "description": "One part per instance or frame."}
}
RETRIEVED: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"multipart/related": BINARY, "application/zip": BINARY},
        "description": "One part per instance, or with `Accept: application/zip` one ZIP of the files as stored.",
    }
}
JSON: dict[int | str, dict[str, Any]] = {
    200: {"content": {DICOM_JSON: JSON_ARRAY}, "description": "DICOM JSON (PS3.18 Annex F)."}
}
Tag = Annotated[str, Path(pattern=r"^[0-9A-Fa-f]{8}$", description="The tag of a bulk element, e.g. 7FE00010.")]


async def _retrieve(
    request: Request, service: DicomWebDep, archives: ArchivesDep, principal: PrincipalDep, target: Target
) -> Response:
    """Each part's ``Content-Location`` is its instance, the answer's the resource asked for (PS3.18 §10.4.3)."""
    ranges = accepted(request)
    if wanted := zip_range(ranges):  # PS3.18 §8.7.3 (Sup 211): the files as one ZIP, which a browser can save
        archive = await archives.archive(
            principal, target.study, target.series, target.instance, wanted.transfer_syntax
        )
        disposition = f'attachment; filename="{archive.filename}"'
        return StreamingResponse(
            archive.chunks, media_type=archive.media_type, headers={"Content-Disposition": disposition}
        )
    retrieval = await service.retrieve(principal, target, retrieve_syntax(ranges))
    settings: Settings = request.app.state.settings
    return multipart_stream("application/dicom", retrieval.parts, base_url(request, settings), location(request))


async def _metadata(
    request: Request, service: DicomWebDep, settings: SettingsDep, principal: PrincipalDep, target: Target
) -> Response:
    check_json(accepted(request))
    body = await service.metadata(principal, target, base_url(request, settings))
    return await json_answer(request, body, location(request))


def _frames_answer(request: Request, frames: list[Frame], urls: list[str]) -> Response:
    """Frames or bulk values, each part with its ``Content-Location`` (PS3.18 §10.4.3.3.5, §10.4.3.3.6)."""

    def media(frame: Frame) -> str:
        return f"{frame.media_type}; transfer-syntax={frame.transfer_syntax}"

    body, content_type = multipart_body(((media(frame), frame.content) for frame in frames), urls)
    return Response(body, headers=location(request, {"Content-Type": content_type}))


# -- retrieve (PS3.18 10.4.1.1.1) ----------------------------------------------------------------
@router.get("/studies/{study}", summary="WADO-RS retrieve a study", responses={**ERRORS, **RETRIEVED})
async def retrieve_study(
    request: Request, service: DicomWebDep, archives: ArchivesDep, principal: PrincipalDep, study: StudyUID
) -> Response:
    """PS3.18 §10.4.1.1.1: every instance of the study, ``multipart/related; type="application/dicom"``,
    or ``application/zip`` (``Accept`` or ``?accept=``): ``<series>/<instance>.dcm`` files as stored."""
    return await _retrieve(request, service, archives, principal, Target(study))


@router.get("/studies/{study}/series/{series}", summary="WADO-RS retrieve a series", responses={**ERRORS, **RETRIEVED})
async def retrieve_series(
    request: Request,
    service: DicomWebDep,
    archives: ArchivesDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
) -> Response:
    """PS3.18 §10.4.1.1.1: every instance of the series; ``transfer-syntax=*`` sends them as stored."""
    return await _retrieve(request, service, archives, principal, Target(study, series))


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}",
    summary="WADO-RS retrieve an instance",
    responses={**ERRORS, **RETRIEVED},
)
async def retrieve_instance(
    request: Request,
    service: DicomWebDep,
    archives: ArchivesDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
) -> Response:
    """PS3.18 §10.4.1.1.1: one instance; without ``transfer-syntax`` it is sent in Explicit VR Little Endian."""
    return await _retrieve(request, service, archives, principal, Target(study, series, instance))


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
    responses={**FRAME_ERRORS, **MULTIPART},
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
    target, numbers = Target(study, series, instance), frame_numbers(frames)
    answer = await service.frames(principal, target, numbers, accepted(request))
    instance_url = location(request)["Content-Location"].rsplit("/frames/", 1)[0]
    return _frames_answer(request, answer, [f"{instance_url}/frames/{number}" for number in numbers])


@router.get(
    "/studies/{study}/series/{series}/instances/{instance}/bulkdata/{tag}",
    summary="WADO-RS retrieve bulk data",
    responses={**ERRORS, **MULTIPART},
)
async def retrieve_bulkdata(
    request: Request,
    service: DicomWebDep,
    principal: PrincipalDep,
    study: StudyUID,
    series: SeriesUID,
    instance: InstanceUID,
    tag: Tag,
) -> Response:
    """PS3.18 §10.4.1.1.5: the value a metadata BulkDataURI names; Pixel Data as its frames, as stored.

    Multipart by default; a single part when the client asks for a bare ``application/octet-stream``
    (OHIF's ``singlepart: "bulkdata"``) and the value is one part.
    """
    target = Target(study, series, instance)  # any tag, private ones too: metadata names them all
    parts = await service.bulkdata(principal, target, int(tag, 16))
    best = accepted(request)[0]
    if len(parts) == 1 and not best.multipart and best.media_type == parts[0].media_type:
        (part,) = parts
        media_type = f"{part.media_type}; transfer-syntax={part.transfer_syntax}"
        return Response(part.content, media_type=media_type, headers=location(request))
    bulk_url = location(request)["Content-Location"]  # the BulkDataURI of the metadata
    instance_url = bulk_url.rsplit("/bulkdata/", 1)[0]
    many = len(parts) > 1  # encapsulated Pixel Data: one part per frame, each named by its frame resource
    urls = [f"{instance_url}/frames/{n}" if many else bulk_url for n in range(1, len(parts) + 1)]
    return _frames_answer(request, parts, urls)
