"""Every RPC of lightbox.v1.Lightbox against a real grpc.aio server on 127.0.0.1, with its errors."""

from __future__ import annotations

import hashlib
import io
import json

import grpc
import httpx
import pytest
from fastapi import FastAPI
from google.protobuf import json_format
from pydicom import dcmread

from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc
from tests.conftest import sample
from tests.grpc.conftest import upload, upload_messages

pytestmark = pytest.mark.anyio

Stub = lightbox_pb2_grpc.LightboxStub


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call  # type: ignore[misc]
    return caught.value.code(), caught.value.details() or ""


async def _stream_code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call:  # type: ignore[attr-defined]
            pass
    return caught.value.code(), caught.value.details() or ""


async def test_upload_stores_once_and_reports_identical_bytes(stub: Stub) -> None:
    data = sample("CT_small.dcm").read_bytes()
    first = await upload(stub, sample("CT_small.dcm"))
    assert first.name.endswith("-CT_small.dcm") and len(first.name) == 36 + 1 + len("CT_small.dcm")
    assert (first.size, first.sha256, first.already_stored) == (len(data), hashlib.sha256(data).hexdigest(), False)
    assert first.sop_instance_uid == str(dcmread(sample("CT_small.dcm")).SOPInstanceUID)
    again = await upload(stub, sample("CT_small.dcm"))
    assert (again.name, again.already_stored) == (first.name, True)


async def test_upload_errors(stub: Stub) -> None:
    code, message = await _code(stub.Upload(iter(upload_messages("notes.txt", b"not dicom at all" * 100))))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "DICOM" in message
    code, _ = await _code(stub.Upload(iter([pb.UploadRequest(chunk=b"x")])))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    data = sample("CT_small.dcm").read_bytes()
    code, message = await _code(stub.Upload(iter(upload_messages("a.dcm", data, expected_sha256="0" * 64))))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and "expected_sha256" in message
    await upload(stub, sample("CT_small.dcm"))
    changed = dcmread(sample("CT_small.dcm"))
    changed.PatientName = "Other^Bytes"
    buffer = io.BytesIO()
    changed.save_as(buffer)
    code, _ = await _code(stub.Upload(iter(upload_messages("b.dcm", buffer.getvalue()))))
    assert code is grpc.StatusCode.ALREADY_EXISTS
    listed = await stub.List(pb.ListRequest())
    assert listed.total == 1


async def test_upload_beyond_the_limit_is_resource_exhausted(grpc_app: FastAPI, stub: Stub) -> None:
    grpc_app.state.settings.max_upload_bytes = 1000
    code, _ = await _code(stub.Upload(iter(upload_messages("big.dcm", sample("CT_small.dcm").read_bytes()))))
    assert code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert list(grpc_app.state.instances.store.staging.iterdir()) == []


async def test_get_attribute_matches_http(stub: Stub, http: httpx.AsyncClient) -> None:
    name = (await upload(stub, sample("CT_small.dcm"))).name
    for tag in ("(0010,0010)", "0010,0010", "00100010", "PatientName", "(0028,0010)"):
        attribute = await stub.GetAttribute(pb.AttributeRequest(name=name, tag=tag))
        body = (await http.get(f"/dicomFile/{name}", params={"tag": tag})).json()["data"]
        assert (attribute.keyword, attribute.vr, attribute.text, attribute.tag) == (
            body["header-attribute-name"],
            body["vr"],
            body["header-attribute-value"],
            tag,
        )
        assert json.loads(attribute.value_json) == body["value"]
        assert json_format.MessageToDict(attribute.value) == body["value"]
    code, _ = await _code(stub.GetAttribute(pb.AttributeRequest(name=name, tag="(7777,7777)")))
    assert code is grpc.StatusCode.NOT_FOUND
    code, _ = await _code(stub.GetAttribute(pb.AttributeRequest(name=name, tag="(zz")))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await _code(stub.GetAttribute(pb.AttributeRequest(name="nope.dcm", tag="PatientName")))
    assert code is grpc.StatusCode.NOT_FOUND


async def test_get_metadata_is_the_http_dicom_json(stub: Stub, http: httpx.AsyncClient) -> None:
    name = (await upload(stub, sample("MR_small.dcm"))).name
    metadata = await stub.GetMetadata(pb.MetadataRequest(name=name))
    assert metadata.dicom_json.encode() == (await http.get(f"/dicomFile/{name}", params={"metadata": ""})).content
    header = json_format.MessageToDict(metadata.header)
    assert header["00100010"] == json.loads(metadata.dicom_json)[0]["00100010"]
    assert header["00080060"] == {"vr": "CS", "Value": ["MR"]}
    code, _ = await _code(stub.GetMetadata(pb.MetadataRequest(name="missing.dcm")))
    assert code is grpc.StatusCode.NOT_FOUND


async def test_list_pages_with_tokens_and_filters(stub: Stub) -> None:
    names = {(await upload(stub, sample(f))).name for f in ("CT_small.dcm", "MR_small.dcm", "JPEG2000.dcm")}
    seen: list[str] = []
    token = ""
    while True:
        page = await stub.List(pb.ListRequest(page_size=2, page_token=token))
        assert page.total == 3
        seen += [item.name for item in page.instances]
        token = page.next_page_token
        if not token:
            break
    assert sorted(seen) == sorted(names)
    only_mr = await stub.List(pb.ListRequest(modality="MR"))
    assert [item.modality for item in only_mr.instances] == ["MR"]
    for bad in (pb.ListRequest(page_token="garbage!"), pb.ListRequest(page_size=5000), pb.ListRequest(study_date="x")):
        code, _ = await _code(stub.List(bad))
        assert code is grpc.StatusCode.INVALID_ARGUMENT


async def test_delete(stub: Stub) -> None:
    name = (await upload(stub, sample("CT_small.dcm"))).name
    await stub.Delete(pb.DeleteRequest(name=name))
    assert (await stub.List(pb.ListRequest())).total == 0
    code, _ = await _code(stub.Delete(pb.DeleteRequest(name=name)))
    assert code is grpc.StatusCode.NOT_FOUND


async def test_render_is_the_http_png_with_its_etag(stub: Stub, http: httpx.AsyncClient) -> None:
    name = (await upload(stub, sample("CT_small.dcm"))).name
    chunks = [chunk async for chunk in stub.Render(pb.RenderRequest(name=name))]
    response = await http.get(f"/dicomFile/{name}", params={"png": ""})
    assert b"".join(c.data for c in chunks) == response.content
    assert (chunks[0].etag, chunks[0].media_type) == (response.headers["etag"], "image/png")
    jpeg = [c async for c in stub.Render(pb.RenderRequest(name=name, format=pb.IMAGE_FORMAT_JPEG, quality=80))]
    http_jpeg = await http.get(f"/dicomFile/{name}", params={"jpeg": "", "quality": "80"})
    assert b"".join(c.data for c in jpeg) == http_jpeg.content


async def test_render_errors(stub: Stub) -> None:
    name = (await upload(stub, sample("CT_small.dcm"))).name
    no_image = (await upload(stub, sample("rtplan.dcm"))).name
    code, _ = await _stream_code(stub.Render(pb.RenderRequest(name=no_image)))
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    for bad in (
        pb.RenderRequest(name=name, quality=50),
        pb.RenderRequest(name=name, has_window=True, window_center=40, window_width=0),
        pb.RenderRequest(name=name, frame=-1),
    ):
        code, _ = await _stream_code(stub.Render(bad))
        assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await _stream_code(stub.Render(pb.RenderRequest(name="missing.dcm")))
    assert code is grpc.StatusCode.NOT_FOUND


async def test_download_whole_and_ranges(stub: Stub) -> None:
    data = sample("CT_small.dcm").read_bytes()
    name = (await upload(stub, sample("CT_small.dcm"))).name
    whole = [c async for c in stub.Download(pb.DownloadRequest(name=name))]
    assert b"".join(c.data for c in whole) == data and whole[0].size == len(data)
    part = [c async for c in stub.Download(pb.DownloadRequest(name=name, offset=128, length=1000))]
    assert b"".join(c.data for c in part) == data[128:1128]
    tail = [c async for c in stub.Download(pb.DownloadRequest(name=name, offset=len(data) - 10))]
    assert b"".join(c.data for c in tail) == data[-10:]
    code, _ = await _stream_code(stub.Download(pb.DownloadRequest(name=name, offset=len(data) + 1)))
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    code, _ = await _stream_code(stub.Download(pb.DownloadRequest(name="missing.dcm")))
    assert code is grpc.StatusCode.NOT_FOUND
