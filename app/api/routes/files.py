"""The original file API: ``POST /upload`` and ``GET /dicomFile/{name}`` (``?tag=``, ``?png``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from app.api.deps import InstancesDep, RendersDep, SettingsDep
from app.api.multipart import PartData, PartEnd, PartStart, check_declared_size, iter_events
from app.api.openapi import error_responses
from app.api.schemas import AttributeBody, UploadBody
from app.dicom.render import Window
from app.errors import InvalidRequest
from app.metrics import record_upload_stored, timed_render
from app.services.instances import StoredFile, Upload
from app.services.renders import RenderRequest

router = APIRouter()

MULTIPART_OVERHEAD = 64 * 1024  # boundaries, part headers and small form fields around the file
MAX_IGNORED_FIELD_BYTES = 64 * 1024

PNG_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}}, "description": "The element (JSON) for ?tag=, the rendered frame for ?png."},
    304: {"description": "Not modified."},
}


async def _receive_first_file(request: Request, instances: InstancesDep, max_body: int) -> StoredFile:
    """Store the first part named ``file``; other fields are skipped (bounded)."""
    upload: Upload | None = None
    stored: StoredFile | None = None
    receiving = False
    ignored = 0
    try:
        async for event in iter_events(request, max_body):
            if isinstance(event, PartStart):
                receiving = event.field_name == "file" and stored is None and upload is None
                if receiving:
                    if event.filename is None:
                        raise InvalidRequest("the field 'file' must carry a file (multipart filename), not text")
                    upload = await instances.begin_upload(event.filename)
            elif isinstance(event, PartData):
                if receiving and upload is not None:
                    await upload.write(event.data)
                else:
                    ignored += len(event.data)
                    if ignored > MAX_IGNORED_FIELD_BYTES:
                        raise InvalidRequest("form fields other than 'file' are too large")
            elif isinstance(event, PartEnd) and receiving and upload is not None:
                stored = await upload.finish()
                upload, receiving = None, False
    except BaseException:
        if upload is not None:
            await upload.abort()
        raise
    if upload is not None:
        await upload.abort()
        raise InvalidRequest("the multipart/form-data body ended before the file was complete")
    if stored is None:
        raise InvalidRequest("no file received: send it as multipart/form-data in a field named 'file'")
    return stored


@router.post(
    "/upload",
    status_code=201,
    summary="Upload one DICOM file",
    response_model=UploadBody,
    responses=error_responses(400, 413, 503, 507),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {"file": {"type": "string", "format": "binary"}},
                    }
                }
            },
        }
    },
)
async def upload(request: Request, instances: InstancesDep, settings: SettingsDep) -> JSONResponse:
    """Validate the file in field ``file`` as DICOM, store it durably under a new name, and return that name."""
    max_body = settings.max_upload_bytes + MULTIPART_OVERHEAD
    check_declared_size(request, max_body)
    stored = await _receive_first_file(request, instances, max_body)
    record_upload_stored(request, stored.size)
    body = UploadBody(message=f"File saved as: {stored.name}", name=stored.name, size=stored.size)
    return JSONResponse(body.model_dump(), status_code=201)


def _parse_window(text: str | None) -> Window | None:
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
    responses={**error_responses(400, 404, 415, 422), **PNG_RESPONSE},
)
async def dicom_file(
    request: Request,
    instances: InstancesDep,
    renders: RendersDep,
    name: Annotated[str, Path(description="A stored name as returned by POST /upload.", max_length=300)],
    tag: Annotated[
        str | None,
        Query(description="(gggg,eeee), gggg,eeee, ggggeeee or a keyword such as PatientName.", max_length=200),
    ] = None,
    png: Annotated[str | None, Query(description="Present (no value needed): render the image as PNG.")] = None,
    frame: Annotated[int, Query(ge=1, le=2**31, description="1-based frame number for ?png.")] = 1,
    window: Annotated[
        str | None, Query(description="<center>,<width> overriding the file's window.", max_length=100)
    ] = None,
) -> Response:
    """``?tag=`` answers one element; ``?png`` renders a frame; when both are given, ``tag`` wins."""
    if tag is not None:
        attribute = await instances.attribute(name, tag)
        data = {
            "header-attribute-name": attribute.keyword,
            "header-attribute-value": attribute.text,
            "tag-values": tag,
            "vr": attribute.vr,
            "value": attribute.value,
        }
        return JSONResponse({"data": data})
    if png is not None:
        render = RenderRequest(frame=frame, window=_parse_window(window))
        await instances.check_exists(name)
        etag = renders.etag(name, render)
        headers = {"ETag": etag, "Cache-Control": "private, max-age=86400"}
        if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
            return Response(status_code=304, headers=headers)
        image = await timed_render(request, renders.render(name, render))
        headers["Content-Disposition"] = f'inline; filename="{name}.png"'
        return Response(image.content, media_type=image.media_type, headers=headers)
    raise InvalidRequest("ask for something: add ?tag=(gggg,eeee) for a header element or ?png for the image")
