"""A real app whose lifespan serves gRPC on 127.0.0.1 (a free port), and generated stubs talking to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.grpc import lightbox_pb2 as pb
from app.grpc import lightbox_pb2_grpc
from app.main import create_app
from tests.auth.world import ADMIN_PASSWORD
from tests.e2e.server import free_port

CHUNK = 64 * 1024


@pytest.fixture
def grpc_settings(settings: Settings) -> Settings:
    """The test's deployment (``backend``: SQLite + folder, or PostgreSQL + S3) serving gRPC too."""
    return Settings(**(settings.model_dump(exclude_unset=True) | {"grpc_port": free_port()}))


@pytest.fixture
def grpc_auth_settings(settings: Settings) -> Settings:
    changes = {"grpc_port": free_port(), "auth_required": True, "admin_password": ADMIN_PASSWORD}
    return Settings(**(settings.model_dump(exclude_unset=True) | changes))


async def _running(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def grpc_app(grpc_settings: Settings) -> AsyncIterator[FastAPI]:
    async for application in _running(grpc_settings):
        yield application


@pytest.fixture
async def grpc_auth_app(grpc_auth_settings: Settings) -> AsyncIterator[FastAPI]:
    async for application in _running(grpc_auth_settings):
        yield application


async def _channel(application: FastAPI) -> AsyncIterator[grpc.aio.Channel]:
    settings: Settings = application.state.settings
    async with grpc.aio.insecure_channel(f"127.0.0.1:{settings.grpc_port}") as channel:
        yield channel


@pytest.fixture
async def channel(grpc_app: FastAPI) -> AsyncIterator[grpc.aio.Channel]:
    async for opened in _channel(grpc_app):
        yield opened


@pytest.fixture
async def auth_channel(grpc_auth_app: FastAPI) -> AsyncIterator[grpc.aio.Channel]:
    async for opened in _channel(grpc_auth_app):
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> lightbox_pb2_grpc.LightboxStub:
    return lightbox_pb2_grpc.LightboxStub(channel)  # type: ignore[no-untyped-call]


@pytest.fixture
async def http(grpc_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=grpc_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://lightbox.test") as client:
        yield client


def upload_messages(file_name: str, data: bytes, expected_sha256: str = "") -> list[pb.UploadRequest]:
    """The Upload stream: ``start`` then the bytes in 64 KiB chunks."""
    start = pb.UploadRequest(start=pb.UploadStart(file_name=file_name, expected_sha256=expected_sha256))
    return [start] + [pb.UploadRequest(chunk=data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)]


async def upload(
    stub: lightbox_pb2_grpc.LightboxStub, path: Path, metadata: tuple[tuple[str, str], ...] = ()
) -> pb.UploadReply:
    reply: pb.UploadReply = await stub.Upload(iter(upload_messages(path.name, path.read_bytes())), metadata=metadata)
    return reply
