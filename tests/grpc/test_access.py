"""The gRPC API under LIGHTBOX_AUTH_REQUIRED=true: the same credentials and the same visibility as HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import httpx
import pytest
from fastapi import FastAPI

from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc
from tests.auth.world import World, build
from tests.conftest import sample
from tests.grpc.conftest import upload

pytestmark = pytest.mark.anyio
Stub = lightbox_pb2_grpc.LightboxStub
Metadata = tuple[tuple[str, str], ...]


@pytest.fixture
async def world(grpc_auth_app: FastAPI) -> AsyncIterator[World]:
    transport = httpx.ASGITransport(app=grpc_auth_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as client:
        yield await build(client)


@pytest.fixture
def stub(auth_channel: grpc.aio.Channel) -> Stub:
    return lightbox_pb2_grpc.LightboxStub(auth_channel)  # type: ignore[no-untyped-call]


def as_(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


async def _drain(call: AsyncIterator[object]) -> None:
    async for _ in call:
        pass


def name_rpcs(stub: Stub, name: str, metadata: Metadata) -> dict[str, Callable[[], Awaitable[object]]]:
    """Every RPC that names a stored file."""
    return {
        "GetAttribute": lambda: stub.GetAttribute(pb.AttributeRequest(name=name, tag="PatientName"), metadata=metadata),
        "GetMetadata": lambda: stub.GetMetadata(pb.MetadataRequest(name=name), metadata=metadata),
        "Render": lambda: _drain(stub.Render(pb.RenderRequest(name=name), metadata=metadata)),
        "Download": lambda: _drain(stub.Download(pb.DownloadRequest(name=name), metadata=metadata)),
        "Delete": lambda: stub.Delete(pb.DeleteRequest(name=name), metadata=metadata),
    }


async def _code(call: Callable[[], Awaitable[object]]) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call()
    code: grpc.StatusCode = caught.value.code()
    return code


async def test_another_users_object_is_not_found_by_every_rpc(stub: Stub, world: World) -> None:
    carol = as_(world.tokens["carol"])
    for rpc, call in name_rpcs(stub, world.name_a, carol).items():
        assert await _code(call) is grpc.StatusCode.NOT_FOUND, rpc
    assert (await stub.List(pb.ListRequest(), metadata=carol)).total == 0
    alice = as_(world.tokens["alice"])
    listed = await stub.List(pb.ListRequest(), metadata=alice)
    assert [item.name for item in listed.instances] == [world.name_a]
    attribute = await stub.GetAttribute(pb.AttributeRequest(name=world.name_a, tag="Modality"), metadata=alice)
    assert attribute.keyword == "Modality" and "CT" in attribute.text


async def test_these_tests_cover_every_rpc(stub: Stub) -> None:
    """A new RPC must join the access tests (as a new route joins tests/auth/test_route_access.py)."""
    rpcs = {method.name for method in pb.DESCRIPTOR.services_by_name["Lightbox"].methods}
    assert rpcs == set(name_rpcs(stub, "x", ())) | {"List", "Upload"}


async def test_without_valid_credentials_every_rpc_is_unauthenticated(stub: Stub, world: World) -> None:
    for metadata in ((), as_("lbt_not-a-real-token"), (("authorization", "Digest x"),)):
        calls = name_rpcs(stub, world.name_a, metadata)
        calls["List"] = lambda metadata=metadata: stub.List(pb.ListRequest(), metadata=metadata)  # type: ignore[misc]
        calls["Upload"] = lambda metadata=metadata: upload(stub, sample("MR_small.dcm"), metadata)  # type: ignore[misc]
        for rpc, call in calls.items():
            assert await _code(call) is grpc.StatusCode.UNAUTHENTICATED, (rpc, metadata)


async def test_a_read_only_key_may_not_upload_or_delete(stub: Stub, world: World) -> None:
    key = as_(world.read_key)
    assert (await stub.GetMetadata(pb.MetadataRequest(name=world.name_a), metadata=key)).dicom_json
    assert await _code(lambda: upload(stub, sample("MR_small.dcm"), key)) is grpc.StatusCode.PERMISSION_DENIED
    delete = name_rpcs(stub, world.name_a, key)["Delete"]
    assert await _code(delete) is grpc.StatusCode.PERMISSION_DENIED


async def test_uploads_belong_to_the_caller(stub: Stub, world: World) -> None:
    carol = as_(world.tokens["carol"])
    stored = await upload(stub, sample("JPEG2000.dcm"), carol)
    assert [i.name for i in (await stub.List(pb.ListRequest(), metadata=carol)).instances] == [stored.name]
    alice = as_(world.tokens["alice"])
    assert await _code(name_rpcs(stub, stored.name, alice)["GetMetadata"]) is grpc.StatusCode.NOT_FOUND
