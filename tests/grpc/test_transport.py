"""The server around the RPCs: cancelled uploads, health following readiness, reflection, generated code."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from fastapi import FastAPI
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pydantic import ValidationError

from app.config import Settings, exposure_problem
from app.errors import IndexUnavailable
from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc
from app.main import create_app
from tests.conftest import sample
from tests.e2e.server import free_port
from tests.grpc.conftest import upload, upload_messages

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("lightbox_pb2.py", "lightbox_pb2.pyi", "lightbox_pb2_grpc.py")


async def test_a_client_cancelling_mid_upload_leaves_nothing(
    grpc_app: FastAPI, stub: lightbox_pb2_grpc.LightboxStub
) -> None:
    sent = asyncio.Event()
    data = sample("CT_small.dcm").read_bytes()

    async def messages() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(start=pb.UploadStart(file_name="half.dcm"))
        yield pb.UploadRequest(chunk=data[:4096])
        sent.set()
        await asyncio.sleep(3600)  # the rest never comes

    call = stub.Upload(messages())
    await sent.wait()
    staging = grpc_app.state.instances.store.staging
    for _ in range(200):  # the server has staged the first bytes
        if any(staging.iterdir()):
            break
        await asyncio.sleep(0.01)
    assert any(staging.iterdir())
    call.cancel()
    for _ in range(200):
        if not any(staging.iterdir()):
            break
        await asyncio.sleep(0.01)
    assert list(staging.iterdir()) == []
    assert (await stub.List(pb.ListRequest())).total == 0


async def test_health_follows_readiness(grpc_app: FastAPI, channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "lightbox.v1.Lightbox"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING

    async def failing() -> None:
        raise IndexUnavailable("the database is unreachable")

    grpc_app.state.readiness_checks["index"] = failing
    answer = await health.Check(health_pb2.HealthCheckRequest())
    assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(health_pb2.HealthCheckRequest(service="other.Service"))
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_the_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    names = [
        service.name
        async for answer in stub.ServerReflectionInfo(iter([request]))
        for service in answer.list_services_response.service
    ]
    assert {"lightbox.v1.Lightbox", "grpc.health.v1.Health"} <= set(names)


def test_grpc_beyond_loopback_needs_auth(tmp_path: Path) -> None:
    open_grpc = Settings(storage_dir=tmp_path, grpc_port=50051, grpc_host="0.0.0.0")
    assert "LIGHTBOX_GRPC_HOST" in (exposure_problem(open_grpc) or "")
    assert exposure_problem(open_grpc.model_copy(update={"auth_required": True})) is None
    assert exposure_problem(Settings(storage_dir=tmp_path, grpc_host="0.0.0.0")) is None  # no port: no gRPC


def test_committed_generated_code_matches_the_proto(tmp_path: Path) -> None:
    """scripts/protoc into a temporary folder gives the committed files byte for byte."""
    subprocess.run(
        [str(ROOT / "scripts" / "protoc"), str(tmp_path)], check=True, env={"PYTHON": sys.executable}, cwd=ROOT
    )
    for name in GENERATED:
        fresh = (tmp_path / "app" / "grpc" / name).read_text()
        assert fresh == (ROOT / "app" / "grpc" / name).read_text(), f"{name} is stale: run scripts/protoc"


async def test_request_ids_metrics_and_audit_per_rpc(
    grpc_app: FastAPI, stub: lightbox_pb2_grpc.LightboxStub, http: httpx.AsyncClient
) -> None:
    name = (await upload(stub, sample("CT_small.dcm"))).name
    call = stub.GetMetadata(pb.MetadataRequest(name=name), metadata=(("x-request-id", "pipeline-42"),))
    await call
    assert ("x-request-id", "pipeline-42") in tuple(await call.trailing_metadata())
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetMetadata(pb.MetadataRequest(name="missing.dcm"), metadata=(("x-request-id", "bad id: spaces"),))
    generated = dict(caught.value.trailing_metadata() or ())["x-request-id"]
    assert len(generated) == 32 and generated != "bad id: spaces"
    registry = grpc_app.state.metrics.registry
    labels = {"method": "GetMetadata", "code": "NOT_FOUND"}
    for _ in range(200):  # the client may see the status before the server's call has finished
        if registry.get_sample_value("lightbox_grpc_requests_total", labels):
            break
        await asyncio.sleep(0.01)
    assert registry.get_sample_value("lightbox_grpc_requests_total", labels) == 1
    assert registry.get_sample_value("lightbox_grpc_requests_total", {"method": "Upload", "code": "OK"}) == 1
    assert registry.get_sample_value("lightbox_uploads_total") == 1
    await upload(stub, sample("CT_small.dcm"))
    assert registry.get_sample_value("lightbox_upload_duplicates_total") == 1
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.Upload(iter(upload_messages("notes.txt", b"plain text, not DICOM")))
    rejected = {"reason": "invalid_dicom"}
    for _ in range(200):
        if registry.get_sample_value("lightbox_upload_rejections_total", rejected):
            break
        await asyncio.sleep(0.01)
    assert registry.get_sample_value("lightbox_upload_rejections_total", rejected) == 1
    assert [c async for c in stub.Render(pb.RenderRequest(name=name))]
    assert registry.get_sample_value("lightbox_renders_total", {"outcome": "ok"}) == 1
    await grpc_app.state.audit.flush()
    records = (await http.get("/admin/audit", params={"limit": 100})).json()["data"]
    by_id = {r["request_id"]: r for r in records}
    assert (by_id["pipeline-42"]["action"], by_id["pipeline-42"]["name"]) == ("metadata", name)
    assert by_id["pipeline-42"]["client"] == "127.0.0.1"
    assert by_id[generated]["outcome"] == "failure"


async def test_a_stalled_upload_is_stopped_and_leaves_nothing(
    grpc_app: FastAPI, stub: lightbox_pb2_grpc.LightboxStub
) -> None:
    grpc_app.state.settings.body_read_timeout_seconds = 0.3

    async def messages() -> AsyncIterator[pb.UploadRequest]:
        yield pb.UploadRequest(start=pb.UploadStart(file_name="slow.dcm"))
        yield pb.UploadRequest(chunk=sample("CT_small.dcm").read_bytes()[:4096])
        await asyncio.sleep(3600)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.Upload(messages())
    assert caught.value.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    assert list(grpc_app.state.instances.store.staging.iterdir()) == []


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate for localhost (openssl, as an operator would make one)."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_tls_when_a_certificate_is_given(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    port = free_port()
    settings = Settings(storage_dir=tmp_path / "storage", grpc_port=port, grpc_tls_cert=cert, grpc_tls_key=key)
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
            stub = lightbox_pb2_grpc.LightboxStub(channel)  # type: ignore[no-untyped-call]
            assert (await stub.List(pb.ListRequest())).total == 0
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as plain:
            stub = lightbox_pb2_grpc.LightboxStub(plain)  # type: ignore[no-untyped-call]
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.List(pb.ListRequest(), timeout=5)
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE


def test_a_certificate_needs_its_key(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    with pytest.raises(ValidationError, match="LIGHTBOX_GRPC_TLS_KEY go together"):
        Settings(storage_dir=tmp_path, grpc_port=free_port(), grpc_tls_cert=certificate[0])
    with pytest.raises(ValidationError, match="LIGHTBOX_GRPC_TLS_KEY go together"):
        Settings(storage_dir=tmp_path, grpc_port=free_port(), grpc_tls_key=certificate[1])


def test_the_readme_shows_the_service_as_the_proto_defines_it() -> None:
    proto = (ROOT / "app" / "grpc" / "lightbox.proto").read_text()
    start = proto.index("service Lightbox {")
    service = proto[start : proto.index("\n}\n", start) + 3]
    assert service in (ROOT / "README.md").read_text(), "README's gRPC section: copy the service from lightbox.proto"
