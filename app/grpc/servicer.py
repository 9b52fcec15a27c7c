"""``lightbox.v1.Lightbox``: each RPC resolves the caller, parses, calls the service the HTTP route
calls, and shapes the answer (architecture rule 2); the audit records come from those services.

Errors leave through :mod:`app.grpc.errors` (one table); every RPC runs inside
:meth:`LightboxServicer._call` or ``_stream`` (request context, access line, metrics).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import grpc
from anyio import to_thread
from starlette.datastructures import State

from app.api.routes.files import date_range
from app.auth.credentials import Authenticator, Presented
from app.auth.principals import LOCAL_ADMIN, Principal
from app.config import Settings
from app.errors import InvalidRequest, UploadTooLarge
from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc
from app.grpc.errors import status_of
from app.grpc.messages import (
    CHUNK,
    MAX_NAME,
    attribute_message,
    decode_page_token,
    encode_page_token,
    instance_message,
    metadata_message,
    read_range,
    render_request,
    stored_name,
    within,
)
from app.grpc.observe import Call, observed, peer_address
from app.index.base import DEFAULT_LIMIT, MAX_LIMIT, ListQuery
from app.metrics import timed
from app.services.archives import is_zip
from app.services.instances import InstanceService
from app.services.instances import Upload as IncomingFile
from app.services.renders import RenderService
from app.services.uploads import UploadSession

T = TypeVar("T")


def _fail(call: Call, exc: Exception, method: str) -> tuple[grpc.StatusCode, str]:
    call.code, message = status_of(exc, method)
    return call.code, message


class LightboxServicer(lightbox_pb2_grpc.LightboxServicer):
    """Reads its services from the app's state, which the lifespan filled before the server started."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.settings: Settings = state.settings
        self.instances: InstanceService = state.instances
        self.renders: RenderService = state.renders
        self.authenticator: Authenticator = state.authenticator

    async def _call(self, context: grpc.aio.ServicerContext, method: str, work: Awaitable[T]) -> T:
        """Run ``work`` observed; a domain error ends the call with its code and message, anything else INTERNAL."""
        async with observed(self.state, context, method) as call:
            try:
                return await work
            except Exception as exc:  # LightboxError: its code; anything else: INTERNAL, logged
                await context.abort(*_fail(call, exc, method))
                raise AssertionError("unreachable: abort raises") from None

    async def _stream(
        self, context: grpc.aio.ServicerContext, method: str, messages: AsyncIterator[T]
    ) -> AsyncIterator[T]:
        """:meth:`_call` for server streams: an error after the first message still ends with its code."""
        async with observed(self.state, context, method) as call:
            try:
                async for message in messages:
                    yield message
            except Exception as exc:
                await context.abort(*_fail(call, exc, method))

    async def principal(self, context: grpc.aio.ServicerContext) -> Principal:
        """As HTTP: single-user mode is the local administrator; else the ``authorization`` metadata."""
        if not self.settings.auth_required:
            return LOCAL_ADMIN
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get("authorization")
        return await self.authenticator.resolve(
            Presented(
                method="POST",
                authorization=authorization if isinstance(authorization, str) else None,
                client=peer_address(context),
            )
        )

    # -- Upload (client stream) ---------------------------------------------------------------
    async def Upload(  # noqa: N802 (the generated base class names the RPCs)
        self, request_iterator: AsyncIterator[pb.UploadRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadReply:
        return await self._call(context, "Upload", self._upload(request_iterator, context))

    async def _upload(
        self, requests: AsyncIterator[pb.UploadRequest], context: grpc.aio.ServicerContext
    ) -> pb.UploadReply:
        session = UploadSession(self.instances, await self.principal(context))
        messages = within(requests, self.settings.body_read_timeout_seconds)
        first = await anext(messages, None)
        if first is None or first.WhichOneof("part") != "start":
            raise InvalidRequest("the first message must be `start` with the file name")
        name = first.start.file_name[:MAX_NAME] or None
        upload = await self.instances.begin_upload(name)
        try:
            await self._receive(upload, messages, first.start.expected_sha256.lower())
        except UploadTooLarge as exc:
            await upload.abort()
            session.fail_part(name, exc)
            raise
        except BaseException:  # a client that cancels leaves nothing behind
            await upload.abort()
            raise
        sha256 = upload.staged.sha256
        await session.finish_part(upload)
        outcome = session.report.files[0]
        if outcome.error is not None:
            raise outcome.error
        assert outcome.stored is not None
        stored = outcome.stored
        self.state.metrics.count_upload(stored.size, stored.created)
        return pb.UploadReply(
            name=stored.name,
            size=stored.size,
            sha256=sha256,
            already_stored=not stored.created,
            sop_instance_uid=stored.sop_instance_uid,
            study_instance_uid=stored.study_instance_uid,
            warnings=list(stored.warnings),
        )

    @staticmethod
    async def _receive(upload: IncomingFile, messages: AsyncIterator[pb.UploadRequest], expected: str) -> None:
        async for message in messages:
            if message.WhichOneof("part") != "chunk":
                raise InvalidRequest("only the first message carries `start`; the others carry `chunk`")
            await upload.write(message.chunk)
        await upload.flush()
        if expected and expected != upload.staged.sha256:
            raise InvalidRequest("the bytes received do not match expected_sha256")
        if upload.staged.size and await to_thread.run_sync(is_zip, upload.staged.path):
            raise InvalidRequest("Upload takes one DICOM file; send ZIP archives to POST /upload")

    # -- look-ups -------------------------------------------------------------------------------
    async def GetAttribute(  # noqa: N802
        self, request: pb.AttributeRequest, context: grpc.aio.ServicerContext
    ) -> pb.Attribute:
        async def work() -> pb.Attribute:
            if not request.tag or len(request.tag) > 200:
                raise InvalidRequest("tag must be (gggg,eeee), gggg,eeee, ggggeeee or a keyword")
            attribute = await self.instances.attribute(
                await self.principal(context), stored_name(request.name), request.tag
            )
            return attribute_message(attribute, request.tag)

        return await self._call(context, "GetAttribute", work())

    async def GetMetadata(  # noqa: N802
        self, request: pb.MetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.Metadata:
        async def work() -> pb.Metadata:
            body = await self.instances.metadata(await self.principal(context), stored_name(request.name))
            return await to_thread.run_sync(metadata_message, body)  # large headers: off the loop

        return await self._call(context, "GetMetadata", work())

    async def List(self, request: pb.ListRequest, context: grpc.aio.ServicerContext) -> pb.ListReply:  # noqa: N802
        async def work() -> pb.ListReply:
            limit = request.page_size or DEFAULT_LIMIT
            if not 1 <= limit <= MAX_LIMIT:
                raise InvalidRequest(f"page_size must be 1..{MAX_LIMIT} (0: {DEFAULT_LIMIT})")
            offset = decode_page_token(request.page_token)
            date_from, date_to = date_range(request.study_date or None)
            query = ListQuery(
                patient_id=request.patient_id or None,
                patient_name=request.patient_name or None,
                study_instance_uid=request.study_instance_uid or None,
                series_instance_uid=request.series_instance_uid or None,
                sop_instance_uid=request.sop_instance_uid or None,
                modality=request.modality or None,
                study_date_from=date_from,
                study_date_to=date_to,
                limit=limit,
                offset=offset,
            )
            page = await self.instances.list(await self.principal(context), query)
            following = offset + len(page.items)
            token = encode_page_token(following) if page.items and following < page.total else ""
            return pb.ListReply(
                instances=[instance_message(i) for i in page.items], total=page.total, next_page_token=token
            )

        return await self._call(context, "List", work())

    async def Delete(self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext) -> pb.DeleteReply:  # noqa: N802
        async def work() -> pb.DeleteReply:
            await self.instances.delete(await self.principal(context), stored_name(request.name))
            return pb.DeleteReply()

        return await self._call(context, "Delete", work())

    # -- streams --------------------------------------------------------------------------------
    async def Render(  # noqa: N802 (an async generator: grpc.aio tells streams by the function's kind)
        self, request: pb.RenderRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ImageChunk]:
        async for message in self._stream(context, "Render", self._render(request, context)):
            yield message

    async def _render(self, request: pb.RenderRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        name = stored_name(request.name)
        render = render_request(request)
        image = await timed(self.state.metrics, self.renders.render(await self.principal(context), name, render))
        etag = self.renders.etag(name, render)
        for start in range(0, max(len(image.content), 1), CHUNK):
            data = image.content[start : start + CHUNK]
            if start == 0:
                yield pb.ImageChunk(etag=etag, media_type=image.media_type, data=data)
            else:
                yield pb.ImageChunk(data=data)

    async def Download(  # noqa: N802 (an async generator: grpc.aio tells streams by the function's kind)
        self, request: pb.DownloadRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.FileChunk]:
        async for message in self._stream(context, "Download", self._download(request, context)):
            yield message

    async def _download(self, request: pb.DownloadRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        name = stored_name(request.name)
        if request.offset < 0 or request.length < 0:
            raise InvalidRequest("offset and length must not be negative")
        path = await self.instances.file_path(await self.principal(context), name)
        size = (await to_thread.run_sync(path.stat)).st_size
        if request.offset > size:
            raise InvalidRequest(f"offset is beyond the end of the file ({size} bytes)")
        end = min(size, request.offset + request.length) if request.length else size
        first = True
        position = request.offset
        while first or position < end:
            chunks = await to_thread.run_sync(read_range, path, position, min(end - position, 16 * CHUNK))
            for data in chunks or [b""]:
                yield pb.FileChunk(size=size, data=data) if first else pb.FileChunk(data=data)
                first = False
                position += len(data)
            if not chunks:
                break
