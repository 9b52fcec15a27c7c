"""Parsing requests and shaping replies of ``lightbox.v1.Lightbox``: the transport's own small jobs
(names, page tokens, render parameters with the HTTP bounds, stream chunking, the upload timeout)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TypeVar

import anyio
from google.protobuf import json_format, struct_pb2

from app.api.routes.files import parse_window
from app.dicom.attributes import Attribute
from app.errors import InvalidRequest, UploadTimedOut
from app.grpc import lightbox_pb2 as pb
from app.index.base import InstanceSummary
from app.services.renders import ImageFormat, RenderRequest

T = TypeVar("T")
CHUNK = 256 * 1024  # bytes per streamed message: well under the 4 MiB message limit of any client
MAX_NAME = 300  # as HTTP's {name}


async def within(messages: AsyncIterator[T], seconds: float) -> AsyncIterator[T]:
    """The client's messages, each within ``seconds`` (LIGHTBOX_BODY_READ_TIMEOUT_SECONDS, as HTTP bodies):
    a stalled client must not hold a staged file and a connection for ever."""
    iterator = aiter(messages)
    while True:
        try:
            with anyio.fail_after(seconds):
                message = await anext(iterator)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise UploadTimedOut(f"no data for {seconds:g} s: the upload was stopped") from None
        yield message


def stored_name(text: str) -> str:
    if not text or len(text) > MAX_NAME:
        raise InvalidRequest(f"name must be a stored name of 1 to {MAX_NAME} characters")
    return text


def encode_page_token(offset: int) -> str:
    """Opaque to clients; today the offset of the next page (newest first, as ``GET /dicomFile``)."""
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_page_token(token: str) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise InvalidRequest("page_token is not one this service issued") from None
    if not isinstance(offset, int) or not 0 <= offset <= 2**31:
        raise InvalidRequest("page_token is not one this service issued")
    return offset


def instance_message(item: InstanceSummary) -> pb.Instance:
    return pb.Instance(
        name=item.name,
        patient_id=item.patient_id or "",
        patient_name=item.patient_name or "",
        study_instance_uid=item.study_instance_uid or "",
        study_date=item.study_date or "",
        series_instance_uid=item.series_instance_uid or "",
        sop_instance_uid=item.sop_instance_uid or "",
        modality=item.modality or "",
        size=item.size,
    )


def render_request(request: pb.RenderRequest) -> RenderRequest:
    """The fields of ``GET /dicomFile/{name}?png`` with the same bounds (frame, window, size, quality)."""
    frame = request.frame or 1
    if not 1 <= frame <= 2**31:
        raise InvalidRequest("frame is 1-based: 1 or more")
    if not 0 <= request.size <= 65535:
        raise InvalidRequest("size must be 1..65535 (0: as stored)")
    image_format = ImageFormat.JPEG if request.format == pb.IMAGE_FORMAT_JPEG else ImageFormat.PNG
    if request.quality and image_format is not ImageFormat.JPEG:
        raise InvalidRequest("quality applies to JPEG only")
    if not 0 <= request.quality <= 100:
        raise InvalidRequest("quality must be 1..100 (0: the default)")
    window = parse_window(f"{request.window_center!r},{request.window_width!r}") if request.has_window else None
    return RenderRequest(frame, window, request.size or None, image_format, request.quality or None)


def read_range(path: Path, offset: int, length: int) -> list[bytes]:
    """Up to ``length`` bytes from ``offset`` in stream-sized chunks: one thread hop per range, not per chunk."""
    chunks = []
    with path.open("rb") as handle:
        handle.seek(offset)
        remaining = length
        while remaining > 0:
            data = handle.read(min(CHUNK, remaining))
            if not data:
                break
            chunks.append(data)
            remaining -= len(data)
    return chunks


def typed_value(value_json: str) -> struct_pb2.Value:
    """The ``?tag=`` answer's JSON value as ``google.protobuf.Value``: generic clients read it typed."""
    typed = struct_pb2.Value()
    json_format.ParseDict(json.loads(value_json), typed)
    return typed


def metadata_message(dicom_json: bytes) -> pb.Metadata:
    """The ``?metadata`` answer as text, and its one data set as a ``google.protobuf.Struct``."""
    header = struct_pb2.Struct()
    json_format.ParseDict(json.loads(dicom_json)[0], header)
    return pb.Metadata(dicom_json=dicom_json.decode(), header=header)


def attribute_message(attribute: Attribute, tag: str) -> pb.Attribute:
    """The ``?tag=`` answer: its fields, the value as JSON text (exact) and typed."""
    value_json = json.dumps(attribute.value)
    return pb.Attribute(
        keyword=attribute.keyword,
        vr=attribute.vr,
        text=attribute.text,
        value_json=value_json,
        tag=tag,
        value=typed_value(value_json),
    )
