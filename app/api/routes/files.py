"""Stored files: ``GET /dicomFile`` (list), ``GET /dicomFile/{name}`` (``?tag=``, ``?metadata``,
``?download``, ``?png``) and ``DELETE /dicomFile/{name}``. Uploads are in :mod:`app.api.routes.upload`."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse

from app.api.deps import NO_NUL, InstancesDep, PrincipalDep, RendersDep
from app.api.openapi import error_responses
from app.api.schemas import AttributeBody, InstanceRow, ListBody
from app.dicom.attributes import Attribute
from app.dicom.render import Window
from app.errors import InvalidRequest
from app.index.base import DEFAULT_LIMIT, MAX_LIMIT, InstanceSummary, ListQuery
from app.metrics import timed_render
from app.services.renders import ImageFormat, RenderRequest

router = APIRouter()

ERRORS = error_responses(400, 401, 403, 404, 503)
RENDER_ERRORS = error_responses(400, 401, 404, 415, 422, 503)
NameParam = Annotated[str, Path(description="A stored name as returned by POST /upload.", max_length=300)]
DICOM_JSON = "application/dicom+json"
_DATE = re.compile(r"^(?P<start>\d{8})?(?P<dash>-)?(?P<end>\d{8})?$")
PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/jpeg": {}}, "description": "The rendered frame."},
    304: {"description": "Not modified."},
}


def attribute_response(attribute: Attribute, tag: str) -> JSONResponse:
    """The ``?tag=`` answer; shared with the lean path (:mod:`app.api.fast_tags`) so both send the same bytes."""
    data = {
        "header-attribute-name": attribute.keyword,
        "header-attribute-value": attribute.text,
        "tag-values": tag,
        "vr": attribute.vr,
        "value": attribute.value,
    }
    return JSONResponse({"data": data})


def parse_window(text: str | None) -> Window | None:
    if text is None:
        return None
    try:
        center_text, width_text = text.split(",")
        center, width = float(center_text), float(width_text)
    except ValueError:
        raise InvalidRequest("window must be <center>,<width>, for example window=40,400") from None
    if not width > 0 or center != center or abs(center) == float("inf") or width == float("inf"):
        raise InvalidRequest("window width must be a positive finite number and the centre finite")
    return Window(center, width)


@router.get(
    "/dicomFile/{name}",
    summary="Look up a header element (?tag=) or render the image (?png)",
    response_model=AttributeBody,
    responses={**RENDER_ERRORS, **PNG_RESPONSE},
)
async def dicom_file(
    request: Request,
    instances: InstancesDep,
    renders: RendersDep,
    principal: PrincipalDep,
    name: NameParam,
    tag: Annotated[
        str | None,
        Query(description="(gggg,eeee), gggg,eeee, ggggeeee or a keyword such as PatientName.", max_length=200),
    ] = None,
    metadata: Annotated[
        str | None, Query(description="Present: the whole header as application/dicom+json (PS3.18 F.2).")
    ] = None,
    download: Annotated[str | None, Query(description="Present: the stored file, byte for byte.")] = None,
    png: Annotated[str | None, Query(description="Present (no value needed): render the image as PNG.")] = None,
    frame: Annotated[int, Query(ge=1, le=2**31, description="1-based frame number for ?png.")] = 1,
    window: Annotated[
        str | None, Query(description="<center>,<width> overriding the file's window.", max_length=100)
    ] = None,
    jpeg: Annotated[str | None, Query(description="Present (no value needed): render the image as JPEG.")] = None,
    size: Annotated[
        int | None, Query(ge=1, le=65535, description="Fit the image inside size x size (never enlarged).")
    ] = None,
    quality: Annotated[int | None, Query(ge=1, le=100, description="JPEG quality, 1..100 (with ?jpeg).")] = None,
) -> Response:
    """``?tag=`` one element; ``?metadata`` the header; ``?download`` the file; ``?png``/``?jpeg`` a frame."""
    if tag is not None:
        return attribute_response(await instances.attribute(principal, name, tag), tag)
    if metadata is not None:
        return Response(await instances.metadata(principal, name), media_type=DICOM_JSON)
    if download is not None:
        path = await instances.file_path(principal, name)
        return FileResponse(path, media_type="application/dicom", filename=name)
    if png is not None or jpeg is not None:
        image_format = ImageFormat.JPEG if jpeg is not None else ImageFormat.PNG
        if quality is not None and image_format is not ImageFormat.JPEG:
            raise InvalidRequest("quality applies to JPEG only: use ?jpeg&quality=1..100")
        render = RenderRequest(frame, parse_window(window), size, image_format, quality)
        etag = renders.etag(name, render)
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if _matches(etag, request.headers.get("if-none-match")):
            await renders.not_modified(principal, name, render)
            return Response(status_code=304, headers=headers)
        image = await timed_render(request, renders.render(principal, name, render))
        headers["Content-Disposition"] = f'inline; filename="{name}.{image_format.value}"'
        return Response(image.content, media_type=image.media_type, headers=headers)
    raise InvalidRequest(
        "ask for something: add ?tag=(gggg,eeee) for a header element, ?png or ?jpeg for the image, "
        "?jpeg, ?metadata for the whole header or ?download for the file"
    )


@router.delete("/dicomFile/{name}", status_code=204, summary="Delete a stored file", responses=ERRORS)
async def delete_file(instances: InstancesDep, principal: PrincipalDep, name: NameParam) -> Response:
    """Remove the index entry and the file; ``404`` if no such file."""
    await instances.delete(principal, name)
    return Response(status_code=204)


def _date(text: str) -> str:
    try:
        datetime.strptime(text, "%Y%m%d")
    except ValueError:
        raise InvalidRequest(f"StudyDate {text!r} is not a date YYYYMMDD") from None
    return text


def date_range(text: str | None) -> tuple[str | None, str | None]:
    """``YYYYMMDD``, ``YYYYMMDD-YYYYMMDD``, ``YYYYMMDD-`` or ``-YYYYMMDD`` (PS3.4 C.2.2.2.5 range matching)."""
    if text is None or text == "":
        return None, None
    match = _DATE.match(text)
    if not match or not (match["start"] or match["end"]) or (match["start"] and match["end"] and not match["dash"]):
        raise InvalidRequest("StudyDate must be YYYYMMDD or a range YYYYMMDD-YYYYMMDD")
    start = _date(match["start"]) if match["start"] else None
    end = _date(match["end"]) if match["end"] else None
    if not match["dash"]:
        return start, start
    if start and end and start > end:
        raise InvalidRequest("StudyDate range starts after it ends")
    return start, end


def _row(item: InstanceSummary) -> dict[str, Any]:
    row = InstanceRow(
        name=item.name,
        patient_id=item.patient_id,
        patient_name=item.patient_name,
        study_instance_uid=item.study_instance_uid,
        study_date=item.study_date,
        series_instance_uid=item.series_instance_uid,
        sop_instance_uid=item.sop_instance_uid,
        modality=item.modality,
        size=item.size,
    )
    return row.model_dump(by_alias=True)


@router.get("/dicomFile", summary="List stored files, newest first", response_model=ListBody, responses=ERRORS)
async def list_files(
    instances: InstancesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size (at most 1000).")] = DEFAULT_LIMIT,
    offset: Annotated[int, Query(ge=0, le=2**31, description="Entries to skip (newest first).")] = 0,
    patient_id: Annotated[
        str | None, Query(alias="PatientID", pattern=NO_NUL, max_length=256, description="* and ? wildcards.")
    ] = None,
    patient_name: Annotated[
        str | None,
        Query(alias="PatientName", pattern=NO_NUL, max_length=256, description="* and ? wildcards; case-insensitive."),
    ] = None,
    study_instance_uid: Annotated[
        str | None,
        Query(alias="StudyInstanceUID", pattern=NO_NUL, max_length=256, description="Exact Study Instance UID."),
    ] = None,
    series_instance_uid: Annotated[
        str | None,
        Query(alias="SeriesInstanceUID", pattern=NO_NUL, max_length=256, description="Exact Series Instance UID."),
    ] = None,
    sop_instance_uid: Annotated[
        str | None, Query(alias="SOPInstanceUID", pattern=NO_NUL, max_length=256, description="Exact SOP Instance UID.")
    ] = None,
    modality: Annotated[
        str | None, Query(alias="Modality", pattern=NO_NUL, max_length=64, description="Modality, e.g. CT.")
    ] = None,
    study_date: Annotated[
        str | None, Query(alias="StudyDate", max_length=17, description="YYYYMMDD or YYYYMMDD-YYYYMMDD.")
    ] = None,
) -> JSONResponse:
    """Filter by DICOM keyword; ``total`` counts every match, ``data`` holds one page."""
    date_from, date_to = date_range(study_date)
    query = ListQuery(
        patient_id=patient_id or None,
        patient_name=patient_name or None,
        study_instance_uid=study_instance_uid or None,
        series_instance_uid=series_instance_uid or None,
        sop_instance_uid=sop_instance_uid or None,
        modality=modality or None,
        study_date_from=date_from,
        study_date_to=date_to,
        limit=limit,
        offset=offset,
    )
    page = await instances.list(principal, query)
    return JSONResponse(
        {"data": [_row(item) for item in page.items], "total": page.total, "limit": limit, "offset": offset}
    )


def _matches(etag: str, if_none_match: str | None) -> bool:
    """If-None-Match (RFC 9110 13.1.2): ``*`` or a listed tag, compared weakly (``W/`` ignored)."""
    if not if_none_match:
        return False
    candidates = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
